// Public, for transport writers. Selectable: something the reactor keeps alive and must end when
// it shuts down (a listening port, a connection). Users of protocols never see it.
#pragma once

namespace twist {

class Selectable {
 public:
  virtual ~Selectable() = default;
  // The reactor is shutting down or being destroyed: release the descriptor now and deliver any
  // final callback (connectionLost with ConnectionLost). Called on the reactor thread, from the
  // loop, never from inside a user callback.
  virtual void reactorShutdown() = 0;
};

}  // namespace twist
