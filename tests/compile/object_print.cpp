// Compiled, never run: object.hpp alone gives `std::cout << object` (the
// generic operator<< of detail/repr.hpp, printing Python's repr); the test
// files include other headers that bring it in, so only this one shows it.
#include <mp/object.hpp>

#include <ostream>

void print_object(std::ostream& out, const mp::Object& object);
void print_object(std::ostream& out, const mp::Object& object) { out << object << '\n'; }
