#include "twist/reactor/protocol.h"

#include "twist/reactor/guard.h"

namespace twist {

void Protocol::makeConnection(ITransport* transport) {
  transport_ = transport;
  connected_ = true;
  connectionMade();
}

void Protocol::notifyConnectionLost(const Failure& reason) {
  connected_ = false;
  // From here on the transport may be freed: whatever still holds this protocol (a coroutine,
  // a timer) writes into a transport that ignores it instead of into freed memory.
  struct Swap {
    ITransport*& t;
    ~Swap() { t = &detail::closedTransport(); }
  } swap{transport_};
  connectionLost(reason);
}

IHalfCloseableProtocol* Protocol::halfCloseable() {
  return dynamic_cast<IHalfCloseableProtocol*>(this);
}

IFileDescriptorReceiver* Protocol::fileDescriptorReceiver() {
  return dynamic_cast<IFileDescriptorReceiver*>(this);
}

void Factory::doStart() {
  if (numPorts_ == 0) startFactory();  // when it throws, nothing was started: nothing is counted
  ++numPorts_;
}

void Factory::doStop() {
  if (numPorts_ == 0) return;
  if (--numPorts_ == 0) {
    // Called while ports close and reactors shut down: a failing stopFactory is logged there,
    // it must not stop the rest of the shutdown.
    try {
      stopFactory();
    } catch (...) {
      detail::logUnhandledException("protocol.Factory", "stopFactory");
    }
  }
}

}  // namespace twist
