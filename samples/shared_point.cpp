// The sharedctypes example of Python's multiprocessing docs ("Shared ctypes
// objects": a child squares a Value, a lock-free Value, a char Array and an
// Array of Point structures) with mp. Python reference: python/shared_point.py.
//
// Python's ctypes Structure is a plain struct here (trivially copyable, so it
// lives in shared memory as it is). lock=False is `false`; lock=lock shares
// one mp::Lock between the char array and the Point array, so one
// `std::lock_guard` on either's get_lock() excludes writers of both. Python
// takes the lock on every element access; the port holds it around the whole
// update, which is what a C++ reader of both arrays wants.
// The docs show `HELLO WORLD` for s.value; Python 3 prints b'HELLO WORLD'
// (a c_char array's value is bytes), and so does the port.
#include <mp/mp.hpp>

#include <cstdio>
#include <mutex>
#include <string>
#include <string_view>

struct Point {
  double x;
  double y;
};

void modify(mp::Value<int>& n, mp::Value<double>& x, mp::Array<char, mp::Lock>& s,
            mp::Array<Point, mp::Lock>& points) {
  {
    std::lock_guard guard(n.get_lock());
    n.value() *= n.value();
  }
  x.value() *= x.value();
  std::lock_guard guard(s.get_lock());  // the same Lock as points.get_lock()
  for (char& c : s.span()) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  for (Point& a : points.span()) {
    a.x *= a.x;
    a.y *= a.y;
  }
}

int main() {
  mp::Lock lock;

  mp::Value<int> n(7);
  mp::Value<double> x(1.0 / 3.0, false);
  mp::Array<char, mp::Lock> s(std::string_view("hello world"), lock);
  mp::Array<Point, mp::Lock> points({{1.875, -6.25}, {-5.75, 2.0}, {2.375, 9.5}}, lock);

  mp::Process p(modify, n, x, s, points);
  p.start();
  p.join();

  // Python's print() of each value: repr for the float, the bytes and the list.
  std::printf("%d\n", n.load());
  std::printf("%s\n", mp::Object(x.load()).repr().c_str());
  std::printf("%s\n", mp::Object(mp::Bytes(std::string(s.span().begin(), s.span().end()))).repr().c_str());
  mp::List pairs;
  for (const Point& a : points.span()) pairs.push_back(mp::Tuple{a.x, a.y});
  std::printf("%s\n", mp::Object(pairs).repr().c_str());
  return p.exitcode() == 0 ? 0 : 1;
}
