// Must not compile: a final exception type cannot be re-raised as
// mp::Remote<E>, which derives from it.
#include <stdexcept>

#include "mp/detail/remote_exception.hpp"

struct Sealed final : std::runtime_error {
  using std::runtime_error::runtime_error;
};
MP_REMOTE_EXCEPTION(Sealed)

int main() {}
