#include "protocols/policies.h"

#include "protocols/protocol.h"

namespace twist {

TimeoutMixin::~TimeoutMixin() {
  if (call_.active()) call_.cancel();
}

std::optional<double> TimeoutMixin::setTimeout(std::optional<double> seconds) {
  std::optional<double> previous = period_;
  period_ = seconds;
  if (call_.active()) call_.cancel();
  if (period_) {
    call_ = clock_.callLater(*period_, [this] {
      period_.reset();  // fired: no timeout until set again (as Twisted)
      timeoutConnection();
    });
  }
  return previous;
}

void TimeoutMixin::resetTimeout() {
  if (period_ && call_.active()) call_.reset(*period_);
}

void TimeoutMixin::timeoutConnection() {
  auto* protocol = dynamic_cast<Protocol*>(this);
  if (protocol != nullptr && protocol->transport() != nullptr) {
    protocol->transport()->loseConnection();
  }
}

}  // namespace twist
