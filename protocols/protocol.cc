#include "protocols/protocol.h"

namespace twist {

void Protocol::makeConnection(ITransport* transport) {
  transport_ = transport;
  connected_ = true;
  connectionMade();
}

void Protocol::notifyConnectionLost(const Failure& reason) {
  connected_ = false;
  connectionLost(reason);
  transport_ = nullptr;
}

void Factory::doStart() {
  if (numPorts_++ == 0) startFactory();
}

void Factory::doStop() {
  if (numPorts_ == 0) return;
  if (--numPorts_ == 0) stopFactory();
}

}  // namespace twist
