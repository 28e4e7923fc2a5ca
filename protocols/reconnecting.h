// Public. ReconnectingClientFactory: a ClientFactory that reconnects with exponential backoff
// and jitter (twisted.internet.protocol.ReconnectingClientFactory).
#pragma once

#include <memory>
#include <optional>
#include <random>

#include "twist/reactor/delayed_call.h"
#include "twist/reactor/interfaces.h"

namespace twist {

// After each failed or lost connection it waits `delay`, then calls connector.connect() again;
// delay starts at initialDelay and is multiplied by factor after every try (up to maxDelay),
// then spread by a normal variate of relative width `jitter`. Call resetDelay() once a
// connection works (typically from your protocol's connectionMade) and stopTrying() to give up.
// Subclasses that override clientConnectionFailed/Lost should call these versions to keep
// reconnecting. Not thread safe.
class ReconnectingClientFactory : public ClientFactory {
 public:
  // `clock` schedules the retries: the Reactor, or a Clock in tests.
  explicit ReconnectingClientFactory(IReactorTime& clock);
  ~ReconnectingClientFactory() override;

  double initialDelay = 1.0;
  double factor = 2.7182818284590451;  // e
  double maxDelay = 3600;
  double jitter = 0.11962656472;  // as Twisted
  std::optional<int> maxRetries;  // give up after this many retries (none: never)

  void clientConnectionFailed(IConnector& connector, const Failure& reason) override;
  void clientConnectionLost(IConnector& connector, const Failure& reason) override;

  // Schedules the next attempt (what the two callbacks above do).
  void retry(IConnector& connector);
  // Stops retrying: cancels a scheduled attempt and stops one in progress.
  void stopTrying();
  // Back to initialDelay and zero retries, and retrying again after stopTrying.
  void resetDelay();

  // The delay of the last scheduled retry (initialDelay before any).
  double delay() const { return delay_.value_or(initialDelay); }
  int retries() const { return retries_; }
  bool continueTrying() const { return continueTrying_; }
  // The retry that is scheduled, if any.
  const DelayedCall& pendingRetry() const { return callID_; }

 private:
  IReactorTime& clock_;
  std::optional<double> delay_;  // unset: initialDelay, as the fields say now
  int retries_ = 0;
  bool continueTrying_ = true;
  // Weak: a pending retry holds its connector; the connector holds this factory.
  std::weak_ptr<IConnector> connector_;
  DelayedCall callID_;
  std::mt19937 rng_{std::random_device{}()};
};

}  // namespace twist
