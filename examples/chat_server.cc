// A line-based chat server (the protocol is in examples/chat.h). Try it with two terminals
// running: nc 127.0.0.1 8000 (or anywhere else: --listen unix:/tmp/chat.sock, then
// nc -U /tmp/chat.sock)
#include <iostream>
#include <string>

#include "examples/chat.h"
#include "examples/flags.h"
#include "twist/reactor/errors.h"
#include "twist/reactor/reactor.h"
#include "twist/transports/endpoints.h"

int main(int argc, char** argv) {
  auto flags = twist::examples::parseServerFlags(argc, argv);
  twist::Reactor reactor;  // SIGINT and SIGTERM stop it
  std::shared_ptr<twist::IListeningPort> port;
  try {
    port = twist::endpoints::serverFromString(reactor, flags.endpoint())
               ->listen(std::make_shared<twist::examples::ChatFactory>());
  } catch (const std::exception& e) {  // CannotListenError, a bad endpoint string
    std::cerr << e.what() << std::endl;
    return 1;
  }
  twist::examples::announceWhenRunning(reactor, port);
  reactor.run();
  return 0;
}
