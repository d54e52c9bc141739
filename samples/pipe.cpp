// Python:
//   def writer(conn):
//       conn.send("Hello, child!")
//       conn.close()
//   reader, writer_end = Pipe(duplex=False)
//   p = Process(target=writer, args=(writer_end,)); p.start(); writer_end.close()
//   print("Parent received:", reader.recv()); p.join()
#include <iostream>
#include <string>

#include <mp/connection.hpp>
#include <mp/process.hpp>

int main() {
  auto [reader, writer] = mp::Pipe(false);
  mp::Process child([writer = writer]() mutable { writer.send(std::string("Hello, child!")); });
  child.start();
  writer.close();  // the child holds its own copy: our reader sees EOF only when it is gone
  std::cout << "Parent received: " << reader.recv<std::string>() << std::endl;
  child.join();
  return child.exitcode().value_or(1);
}
