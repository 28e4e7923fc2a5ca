// A line-based chat server (the protocol is in examples/chat.h). Try it with two terminals
// running: nc 127.0.0.1 8000
#include <iostream>
#include <string>

#include "examples/chat.h"
#include "examples/flags.h"
#include "twist/reactor/errors.h"
#include "twist/reactor/reactor.h"
#include "twist/transports/tcp_port.h"

int main(int argc, char** argv) {
  auto flags = twist::examples::parseServerFlags(argc, argv);
  twist::Reactor reactor;  // SIGINT and SIGTERM stop it
  std::shared_ptr<twist::IListeningPort> port;
  try {
    port = reactor.listenTCP(flags.port, std::make_shared<twist::examples::ChatFactory>(),
                             {.interface = flags.interface});
  } catch (const twist::CannotListenError& e) {
    std::cerr << e.what() << std::endl;
    return 1;
  }
  twist::examples::announceWhenRunning(reactor, port);
  reactor.run();
  return 0;
}
