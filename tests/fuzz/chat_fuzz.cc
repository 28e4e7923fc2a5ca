// The chat protocol of examples/chat_server with several clients on StringTransports, driven by
// the input: connect, send bytes, disconnect, in any order. No crash, no sanitizer report, and
// the room only lists clients that are connected and named.
#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include "examples/chat.h"
#include "twist/protocols/testing/string_transport.h"
#include "twist/reactor/errors.h"

namespace {

struct Client {
  std::unique_ptr<twist::StringTransport> transport;
  std::shared_ptr<twist::Protocol> protocol;
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  twist::examples::ChatFactory room;
  std::vector<Client> clients(4);
  auto hangUp = [&](Client& c) {
    if (!c.protocol) return;
    c.protocol->notifyConnectionLost(twist::ConnectionDone::failure());
    c.protocol.reset();
    c.transport.reset();
  };
  size_t i = 0;
  while (i < size) {
    uint8_t op = data[i++];
    Client& c = clients[op & 3];
    switch ((op >> 2) & 3) {
      case 0:  // connect
        if (!c.protocol) {
          c.transport = std::make_unique<twist::StringTransport>();
          c.protocol = room.buildProtocol(c.transport->getPeer());
          c.protocol->makeConnection(c.transport.get());
        }
        break;
      case 1:  // hang up
        hangUp(c);
        break;
      default: {  // send the next n bytes
        size_t n = std::min<size_t>(size - i, op >> 4);
        if (c.protocol) {
          c.protocol->dataReceived(std::string_view(reinterpret_cast<const char*>(data) + i, n));
          if (c.transport->disconnecting()) hangUp(c);  // what the real transport would do
        }
        i += n;
      }
    }
  }
  for (auto& c : clients) hangUp(c);
  if (!room.users.empty()) std::abort();  // everyone left: nobody may stay listed
  return 0;
}
