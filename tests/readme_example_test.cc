// The "Testing your protocol" example of README.md, verbatim: keep the two in step.
#include <gtest/gtest.h>

#include "twist/protocols/basic.h"
#include "twist/protocols/testing/string_transport.h"
#include "twist/reactor/clock.h"

// Answers "hello, NAME" to each line; hangs up after 30 s of silence.
class Greeter : public twist::LineReceiver {
 public:
  explicit Greeter(twist::IReactorTime& clock) : clock_(clock) {}
  void connectionMade() override {
    idle_ = clock_.callLater(30, [this] { transport()->loseConnection(); });
  }
  void lineReceived(std::string_view name) override {
    sendLine("hello, " + std::string(name));
    idle_.reset(30);
  }
  void connectionLost(const twist::Failure&) override {
    if (idle_.active()) idle_.cancel();
  }

 private:
  twist::IReactorTime& clock_;
  twist::DelayedCall idle_;
};

TEST(Greeter, AnswersEachLineHoweverItIsSplit) {
  twist::task::Clock clock;
  twist::StringTransport transport;
  Greeter greeter(clock);
  greeter.makeConnection(&transport);
  greeter.dataReceived("bob\r\nal");
  greeter.dataReceived("ice\r\n");
  EXPECT_EQ(transport.value(), "hello, bob\r\nhello, alice\r\n");
}

TEST(Greeter, HangsUpWhenIdleOrFlooded) {
  twist::task::Clock clock;
  twist::StringTransport transport;
  Greeter greeter(clock);
  greeter.makeConnection(&transport);
  clock.advance(29);
  greeter.dataReceived("bob\r\n");  // resets the idle timer
  clock.advance(29);
  EXPECT_FALSE(transport.loseConnectionCalled());
  clock.advance(1);
  EXPECT_TRUE(transport.loseConnectionCalled());

  twist::StringTransport flooded;
  Greeter other(clock);
  other.makeConnection(&flooded);
  other.dataReceived(std::string(20000, 'x'));  // over the 16 KiB line limit
  EXPECT_TRUE(flooded.loseConnectionCalled());
}
