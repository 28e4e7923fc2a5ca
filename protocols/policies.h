// Public. Policies for protocols (twisted.protocols.policies): an idle timeout.
#pragma once

#include <optional>

#include "reactor/delayed_call.h"

namespace twist {

// Idle timeout (Twisted's TimeoutMixin). Mix it into a Protocol: setTimeout(seconds) starts the
// countdown, resetTimeout() (call it when data arrives) starts it again, and timeoutConnection()
// runs when it expires: by default it calls loseConnection() on the protocol's transport.
// Works on the Reactor and on a fake Clock. The pending call is cancelled when the mixin is
// destroyed (with its connection), so it never fires on a dead protocol.
class TimeoutMixin {
 public:
  explicit TimeoutMixin(IReactorTime& clock) : clock_(clock) {}
  virtual ~TimeoutMixin();

  // Sets the idle period (nullopt: no timeout) and restarts the countdown. Returns the previous
  // period.
  std::optional<double> setTimeout(std::optional<double> seconds);
  // Starts the countdown again (no effect without a timeout).
  void resetTimeout();
  std::optional<double> timeOut() const { return period_; }

 protected:
  // The period passed without a resetTimeout. Default: the transport's loseConnection().
  virtual void timeoutConnection();

 private:
  IReactorTime& clock_;
  std::optional<double> period_;
  DelayedCall call_;
};

}  // namespace twist
