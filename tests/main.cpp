// The doctest runner shared by every test executable. doctest's own crash
// handlers are off: tests fork children that crash on purpose, and those must
// die by their signal, not by doctest's report.
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#define DOCTEST_CONFIG_NO_POSIX_SIGNALS
#include <doctest/doctest.h>
