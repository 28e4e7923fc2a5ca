// Benchmark baseline: an echo server on standalone Asio (Debian's libasio-dev), one io_context
// on one thread, the usual async_read_some / async_write loop per connection.
#include <asio.hpp>
#include <iostream>
#include <memory>

#include "examples/flags.h"

namespace {

class Session : public std::enable_shared_from_this<Session> {
 public:
  explicit Session(asio::ip::tcp::socket socket) : socket_(std::move(socket)) {}
  void start() { read(); }

 private:
  void read() {
    auto self = shared_from_this();
    socket_.async_read_some(asio::buffer(buf_), [self](std::error_code ec, size_t n) {
      if (ec) return;
      asio::async_write(self->socket_, asio::buffer(self->buf_, n),
                        [self](std::error_code ec, size_t) {
                          if (!ec) self->read();
                        });
    });
  }
  asio::ip::tcp::socket socket_;
  char buf_[64 * 1024];
};

void accept(asio::ip::tcp::acceptor& acceptor) {
  acceptor.async_accept([&acceptor](std::error_code ec, asio::ip::tcp::socket socket) {
    if (!ec) std::make_shared<Session>(std::move(socket))->start();
    accept(acceptor);
  });
}

}  // namespace

int main(int argc, char** argv) {
  auto flags = twist::examples::parseServerFlags(argc, argv);
  asio::io_context io(1);
  asio::ip::tcp::acceptor acceptor(
      io, asio::ip::tcp::endpoint(asio::ip::make_address(flags.interface), flags.port));
  acceptor.listen(1024);
  std::cout << "listening on " << flags.interface << ":" << acceptor.local_endpoint().port()
            << std::endl;
  accept(acceptor);
  io.run();
}
