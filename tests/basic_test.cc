// Framers (LineReceiver, IntNStringReceiver, NetstringReceiver) through StringTransport: split
// invariance, limits at the boundary, mode switches, closing and pausing from callbacks, garbage.
#include "twist/protocols/basic.h"

#include <gtest/gtest.h>

#include <random>
#include <string>
#include <vector>

#include "tests/test_util.h"
#include "twist/protocols/testing/string_transport.h"

namespace twist {
namespace {

// Feeds `stream` to a fresh protocol (made by `make`) in the given chunk sizes; returns what it
// recorded.
template <class P, class Make>
std::vector<std::string> feedChunks(Make make, const std::string& stream,
                                    const std::vector<size_t>& chunks) {
  StringTransport t;
  auto p = make();
  p->makeConnection(&t);
  size_t pos = 0;
  for (size_t c : chunks) {
    p->dataReceived(std::string_view(stream).substr(pos, c));
    pos += c;
  }
  p->dataReceived(std::string_view(stream).substr(pos));
  return p->got;
}

// Checks that whole, byte by byte, every two-piece split, and random chunks all give `expected`.
template <class P, class Make>
void expectSplitInvariant(Make make, const std::string& stream,
                          const std::vector<std::string>& expected) {
  EXPECT_EQ(feedChunks<P>(make, stream, {}), expected) << "whole";
  EXPECT_EQ(feedChunks<P>(make, stream, std::vector<size_t>(stream.size(), 1)), expected)
      << "byte by byte";
  for (size_t split = 0; split <= stream.size(); ++split) {
    ASSERT_EQ(feedChunks<P>(make, stream, {split}), expected) << "split at " << split;
  }
  std::mt19937 rng(42);
  for (int round = 0; round < 50; ++round) {
    std::vector<size_t> chunks;
    for (size_t left = stream.size(); left > 0;) {
      size_t c = std::min<size_t>(left, 1 + rng() % 7);
      chunks.push_back(c);
      left -= c;
    }
    ASSERT_EQ(feedChunks<P>(make, stream, chunks), expected) << "random round " << round;
  }
}

class Lines : public LineReceiver {
 public:
  std::vector<std::string> got;
  std::function<void(Lines&, std::string_view)> onLine;
  std::string raw;
  int exceeded = 0;

 protected:
  void lineReceived(std::string_view line) override {
    got.emplace_back(line);
    if (onLine) onLine(*this, line);
  }
  void rawDataReceived(std::string_view data) override { raw.append(data); }
  void lineLengthExceeded(std::string_view line) override {
    ++exceeded;
    LineReceiver::lineLengthExceeded(line);
  }
};

TEST(LineReceiver, SplitInvariance) {
  auto make = [] { return std::make_unique<Lines>(); };
  expectSplitInvariant<Lines>(make, "a\r\nbb\r\n\r\nccc\r\ndd", {"a", "bb", "", "ccc"});
  // A "\r" alone is part of a line; only "\r\n" ends one.
  expectSplitInvariant<Lines>(make, "x\ry\r\n\r\r\n", {"x\ry", "\r"});
}

TEST(LineReceiver, DelimitersAcrossEveryBlockBoundary) {
  // Lines of 0..40 bytes: "\r" and "\n" fall on every offset of the 16-byte blocks the scanner
  // reads, and long lines take its memchr path.
  std::string stream;
  std::vector<std::string> expected;
  for (size_t n = 0; n <= 40; ++n) {
    std::string line(n, static_cast<char>('a' + n % 26));
    if (n % 3 == 0 && n > 0) line[n / 2] = '\r';  // a lone "\r" inside a line
    stream += line + "\r\n";
    expected.push_back(line);
  }
  auto make = [] { return std::make_unique<Lines>(); };
  expectSplitInvariant<Lines>(make, stream, expected);
}

TEST(LineReceiver, OtherDelimiters) {
  auto nl = [] {
    auto p = std::make_unique<Lines>();
    p->setDelimiter("\n");
    return p;
  };
  expectSplitInvariant<Lines>(nl, "one\ntwo\r\n\n", {"one", "two\r", ""});
  auto word = [] {
    auto p = std::make_unique<Lines>();
    p->setDelimiter("END");
    return p;
  };
  expectSplitInvariant<Lines>(word, "aENDbENENDEND", {"a", "bEN", ""});
}

TEST(LineReceiver, EmptyDelimiterIsRefused) {
  Lines p;
  EXPECT_THROW(p.setDelimiter(""), std::invalid_argument);
}

TEST(LineReceiver, MaxLengthAtTheBoundary) {
  StringTransport t;
  Lines p;
  p.setMaxLength(10);
  p.makeConnection(&t);
  p.dataReceived(std::string(10, 'a') + "\r\n");  // exactly the limit: fine
  EXPECT_EQ(p.got.size(), 1u);
  EXPECT_EQ(p.exceeded, 0);
  p.dataReceived(std::string(11, 'b') + "\r\nafter\r\n");  // one more: too long
  EXPECT_EQ(p.exceeded, 1);
  EXPECT_TRUE(t.loseConnectionCalled());
  EXPECT_EQ(p.got.size(), 1u) << "nothing after the over-long line";
}

TEST(LineReceiver, PartialLineThatCanNoLongerFitIsTooLong) {
  StringTransport t;
  Lines p;
  p.setMaxLength(10);
  p.makeConnection(&t);
  p.dataReceived(std::string(11, 'a'));  // could still be 10 bytes + "\r\n"? no: 11 > 10, but
  EXPECT_EQ(p.exceeded, 0);              // a line of 10 + delimiter needs 12 bytes to be sure
  p.dataReceived("a");
  EXPECT_EQ(p.exceeded, 1);
  EXPECT_TRUE(t.loseConnectionCalled());
}

TEST(LineReceiver, RawModeAndBackMidBuffer) {
  auto make = [] {
    auto p = std::make_unique<Lines>();
    p->onLine = [](Lines& self, std::string_view line) {
      if (line == "RAW") self.setRawMode();
    };
    return p;
  };
  StringTransport t;
  auto p = make();
  p->makeConnection(&t);
  p->dataReceived("hdr\r\nRAW\r\nraw bytes\r\nnot a line");
  EXPECT_EQ(p->got, (std::vector<std::string>{"hdr", "RAW"}));
  EXPECT_EQ(p->raw, "raw bytes\r\nnot a line");
  p->setLineMode("x\r\ny\r\npartial");
  EXPECT_EQ(p->got, (std::vector<std::string>{"hdr", "RAW", "x", "y"}));
  p->dataReceived("\r\n");
  EXPECT_EQ(p->got.back(), "partial");
  // Raw bytes arrive whatever the split; their concatenation is the same.
  const std::string s = "a\r\nRAW\r\n0123456789";
  for (size_t split = 0; split <= s.size(); ++split) {
    auto q = make();
    q->makeConnection(&t);
    q->dataReceived(s.substr(0, split));
    q->dataReceived(s.substr(split));
    EXPECT_EQ(q->raw, "0123456789") << split;
  }
}

TEST(LineReceiver, CloseFromInsideLineReceivedStopsDelivery) {
  auto make = [] {
    auto p = std::make_unique<Lines>();
    p->onLine = [](Lines& self, std::string_view line) {
      if (line == "quit") self.transport()->loseConnection();
    };
    return p;
  };
  expectSplitInvariant<Lines>(make, "a\r\nquit\r\nb\r\nc\r\n", {"a", "quit"});
}

TEST(LineReceiver, PauseHoldsLinesUntilResume) {
  StringTransport t;
  Lines p;
  p.onLine = [](Lines& self, std::string_view line) {
    if (line == "pause") self.pauseProducing();
  };
  p.makeConnection(&t);
  p.dataReceived("a\r\npause\r\nb\r\nc\r\n");
  EXPECT_EQ(p.got, (std::vector<std::string>{"a", "pause"}));
  EXPECT_TRUE(t.paused());
  p.dataReceived("d\r\n");
  EXPECT_EQ(p.got.size(), 2u);
  p.resumeProducing();
  EXPECT_FALSE(t.paused());
  EXPECT_EQ(p.got, (std::vector<std::string>{"a", "pause", "b", "c", "d"}));
}

TEST(LineReceiver, ClearLineBufferInsideACallbackTakesTheRest) {
  StringTransport t;
  Lines p;
  std::string taken;
  p.onLine = [&](Lines& self, std::string_view line) {
    if (line == "take") taken = self.clearLineBuffer();
  };
  p.makeConnection(&t);
  p.dataReceived("take\r\nb\r\nc");
  EXPECT_EQ(taken, "b\r\nc");
  EXPECT_EQ(p.got, (std::vector<std::string>{"take"}));
  p.dataReceived("d\r\n");
  EXPECT_EQ(p.got.back(), "d");
}

TEST(LineReceiver, ReentrantDataIsQueuedInOrder) {
  StringTransport t;
  Lines p;
  p.onLine = [](Lines& self, std::string_view line) {
    if (line == "inject") self.dataReceived("injected\r\n");
  };
  p.makeConnection(&t);
  p.dataReceived("inject\r\nnext\r\n");
  EXPECT_EQ(p.got, (std::vector<std::string>{"inject", "next", "injected"}));
}

TEST(LineReceiver, SendLineAndGarbage) {
  StringTransport t;
  Lines p;
  p.setMaxLength(64);
  p.makeConnection(&t);
  p.sendLine("hello");
  EXPECT_EQ(t.value(), "hello\r\n");
  std::mt19937 rng(7);
  std::string junk(4096, '\0');
  for (auto& c : junk) c = static_cast<char>(rng());
  p.dataReceived(junk);  // no crash; a long run without "\r\n" closes the connection
  EXPECT_TRUE(t.loseConnectionCalled());
}

TEST(LineOnlyReceiver, Lines) {
  class P : public LineOnlyReceiver {
   public:
    std::vector<std::string> got;
    void lineReceived(std::string_view l) override { got.emplace_back(l); }
  };
  auto make = [] { return std::make_unique<P>(); };
  expectSplitInvariant<P>(make, "1\r\n22\r\n333", {"1", "22"});
}

// ---- length-prefixed strings ----

template <class Base>
class Strings : public Base {
 public:
  std::vector<std::string> got;
  int exceeded = 0;
  std::function<void(Strings&, std::string_view)> onString;

 protected:
  void stringReceived(std::string_view s) override {
    got.emplace_back(s);
    if (onString) onString(*this, s);
  }
  void lengthLimitExceeded(size_t n) override {
    ++exceeded;
    Base::lengthLimitExceeded(n);
  }
};

std::string prefixed(int bytes, const std::string& s) {
  std::string out;
  for (int i = bytes - 1; i >= 0; --i) out += static_cast<char>((s.size() >> (8 * i)) & 0xff);
  return out + s;
}

template <class Base>
void checkIntN(int bytes) {
  auto make = [] { return std::make_unique<Strings<Base>>(); };
  std::vector<std::string> msgs = {"", "a", "hello", std::string(200, 'z'), "\r\n\0x"};
  std::string stream;
  for (auto& m : msgs) stream += prefixed(bytes, m);
  stream += prefixed(bytes, "partial").substr(0, bytes + 3);
  expectSplitInvariant<Strings<Base>>(make, stream, msgs);

  StringTransport t;
  Strings<Base> p;
  p.setMaxLength(10);
  p.makeConnection(&t);
  p.dataReceived(prefixed(bytes, std::string(10, 'x')));  // exactly the limit
  EXPECT_EQ(p.got.size(), 1u);
  p.dataReceived(prefixed(bytes, std::string(11, 'y')));  // one more
  EXPECT_EQ(p.exceeded, 1);
  EXPECT_TRUE(t.loseConnectionCalled());
  EXPECT_EQ(p.got.size(), 1u);

  StringTransport out;
  Strings<Base> s;
  s.makeConnection(&out);
  s.sendString("abc");
  EXPECT_EQ(out.value(), prefixed(bytes, "abc"));
}

TEST(IntNStringReceiver, Int32) { checkIntN<Int32StringReceiver>(4); }
TEST(IntNStringReceiver, Int16) { checkIntN<Int16StringReceiver>(2); }
TEST(IntNStringReceiver, Int8) { checkIntN<Int8StringReceiver>(1); }

TEST(IntNStringReceiver, SendStringRefusesWhatThePrefixCannotHold) {
  StringTransport t;
  Strings<Int8StringReceiver> p;
  p.makeConnection(&t);
  p.sendString(std::string(255, 'a'));
  EXPECT_THROW(p.sendString(std::string(256, 'a')), StringTooLongError);
  Strings<Int16StringReceiver> q;
  q.makeConnection(&t);
  q.sendString(std::string(65535, 'a'));
  EXPECT_THROW(q.sendString(std::string(65536, 'a')), StringTooLongError);
}

TEST(IntNStringReceiver, CloseAndPauseFromInsideStringReceived) {
  auto closing = [] {
    auto p = std::make_unique<Strings<Int32StringReceiver>>();
    p->onString = [](auto& self, std::string_view s) {
      if (s == "bye") self.transport()->loseConnection();
    };
    return p;
  };
  std::string stream = prefixed(4, "a") + prefixed(4, "bye") + prefixed(4, "c");
  expectSplitInvariant<Strings<Int32StringReceiver>>(closing, stream, {"a", "bye"});

  StringTransport t;
  Strings<Int32StringReceiver> p;
  p.onString = [](auto& self, std::string_view s) {
    if (s == "wait") self.pauseProducing();
  };
  p.makeConnection(&t);
  p.dataReceived(prefixed(4, "wait") + prefixed(4, "later"));
  EXPECT_EQ(p.got, (std::vector<std::string>{"wait"}));
  p.resumeProducing();
  EXPECT_EQ(p.got, (std::vector<std::string>{"wait", "later"}));
}

// ---- netstrings ----

class Netstrings : public NetstringReceiver {
 public:
  std::vector<std::string> got;

 protected:
  void stringReceived(std::string_view s) override { got.emplace_back(s); }
};

TEST(NetstringReceiver, SplitInvariance) {
  auto make = [] { return std::make_unique<Netstrings>(); };
  expectSplitInvariant<Netstrings>(make, "5:hello,0:,3:a:,,12:hello world!,4:pa",
                                   {"hello", "", "a:,", "hello world!"});
}

TEST(NetstringReceiver, MalformedInputClosesWithAReasonThatSaysWhich) {
  testing::LogCaptureScope logs;
  struct Case {
    std::string input;
    std::string reason;
  };
  std::vector<Case> cases = {
      {"05:hello,", "leading zero"},
      {"x:", "invalid character"},
      {"-1:a,", "invalid character"},
      {"5:hellox", "not followed by ','"},
      {":a,", "no length"},
      {"1000:", "more digits"},
      {"101:", "exceeds the maximum"},
  };
  for (const auto& c : cases) {
    StringTransport t;
    Netstrings p;
    p.setMaxLength(100);
    p.makeConnection(&t);
    p.dataReceived("2:ok,");
    p.dataReceived(c.input);
    p.dataReceived("2:no,");
    EXPECT_EQ(p.got, (std::vector<std::string>{"ok"})) << c.input;
    EXPECT_TRUE(p.brokenPeer()) << c.input;
    EXPECT_NE(p.parseError().find(c.reason), std::string::npos)
        << c.input << " -> " << p.parseError();
    EXPECT_TRUE(t.loseConnectionCalled()) << c.input;
  }
  EXPECT_EQ(logs->count("Closing the connection from 192.0.2.2:12345"),
            static_cast<int>(cases.size()));
}

TEST(NetstringReceiver, LimitAtTheBoundaryAndGarbage) {
  StringTransport t;
  Netstrings p;
  p.setMaxLength(10);
  p.makeConnection(&t);
  p.dataReceived("10:0123456789,");
  EXPECT_EQ(p.got.size(), 1u);
  EXPECT_FALSE(p.brokenPeer());
  p.dataReceived("11:");
  EXPECT_TRUE(p.brokenPeer());

  testing::LogCaptureScope logs;
  std::mt19937 rng(3);
  for (int i = 0; i < 200; ++i) {
    StringTransport u;
    Netstrings q;
    q.makeConnection(&u);
    std::string junk(64, '\0');
    for (auto& c : junk) c = static_cast<char>(rng());
    q.dataReceived(junk);  // no crash, and no unbounded wait on garbage
    EXPECT_TRUE(q.brokenPeer() || junk.find(':') == std::string::npos);
  }
}

TEST(NetstringReceiver, TheFirstFaultReportedDoesNotDependOnTheSplit) {
  // Found by the fuzzer: a leading zero, then a bad character.
  auto make = [] {
    auto p = std::make_unique<Netstrings>();
    p->setMaxLength(10);
    return p;
  };
  const std::string stream = "058hello,";
  std::string whole;
  {
    StringTransport t;
    auto p = make();
    p->makeConnection(&t);
    p->dataReceived(stream);
    whole = p->parseError();
  }
  EXPECT_NE(whole.find("leading zero"), std::string::npos) << whole;
  for (size_t split = 0; split <= stream.size(); ++split) {
    StringTransport t;
    auto p = make();
    p->makeConnection(&t);
    p->dataReceived(stream.substr(0, split));
    p->dataReceived(stream.substr(split));
    EXPECT_EQ(p->parseError(), whole) << "split at " << split;
  }
}

TEST(NetstringReceiver, CloseFromInsideStringReceivedStopsDelivery) {
  class Closing : public Netstrings {
   protected:
    void stringReceived(std::string_view s) override {
      Netstrings::stringReceived(s);
      if (s == "bye") transport()->loseConnection();
    }
  };
  auto make = [] { return std::make_unique<Closing>(); };
  expectSplitInvariant<Closing>(make, "1:a,3:bye,1:c,", {"a", "bye"});
}

TEST(NetstringReceiver, SendString) {
  StringTransport t;
  Netstrings p;
  p.makeConnection(&t);
  p.sendString("hello");
  p.sendString("");
  EXPECT_EQ(t.value(), "5:hello,0:,");
}

// ---- hardening: delimiter changes, buffer clearing, limits at SIZE_MAX, big messages slowly ----

TEST(LineReceiver, SetDelimiterInsideLineReceivedAppliesToTheRestOfTheChunk) {
  auto make = [] {
    auto p = std::make_unique<Lines>();
    p->onLine = [](Lines& self, std::string_view line) {
      if (line == "to-long") self.setDelimiter("<END>");
      if (line == "to-short") self.setDelimiter("|");
    };
    return p;
  };
  expectSplitInvariant<Lines>(make, "a\r\nto-long\r\nb<END>c\r\nd<END>to-short<END>e|f|",
                              {"a", "to-long", "b", "c\r\nd", "to-short", "e", "f"});
}

TEST(LineReceiver, ClearLineBufferFromRawModeOrAnOverlongLineLeavesLaterChunksWhole) {
  StringTransport t;
  Lines p;
  p.onLine = [](Lines& self, std::string_view line) {
    if (line == "raw") self.setRawMode();
  };
  p.makeConnection(&t);
  p.dataReceived("raw\r\nbytes");
  EXPECT_EQ(p.raw, "bytes");
  EXPECT_EQ(p.clearLineBuffer(), "");
  p.setLineMode();
  p.dataReceived("one\r\ntwo\r\nthree\r\n");
  EXPECT_EQ(p.got, (std::vector<std::string>{"raw", "one", "two", "three"}));

  // lineLengthExceeded that clears the buffer instead of closing.
  class Lenient : public Lines {
   protected:
    void lineLengthExceeded(std::string_view) override {
      ++exceeded;
      clearLineBuffer();
    }
  };
  StringTransport u;
  Lenient q;
  q.setMaxLength(4);
  q.makeConnection(&u);
  q.dataReceived("toolong\r\n");
  q.dataReceived("a\r\nb\r\nc\r\n");
  EXPECT_EQ(q.exceeded, 1);
  EXPECT_EQ(q.got, (std::vector<std::string>{"a", "b", "c"}));
  EXPECT_FALSE(u.loseConnectionCalled());
}

TEST(LineReceiver, NoLimitAtSizeMax) {
  StringTransport t;
  Lines p;
  p.setMaxLength(SIZE_MAX);
  p.makeConnection(&t);
  p.dataReceived("abc");  // a partial line: no overflow makes it "too long"
  p.dataReceived(std::string(100000, 'x') + "\r\n");
  EXPECT_EQ(p.exceeded, 0);
  EXPECT_FALSE(t.loseConnectionCalled());
  ASSERT_EQ(p.got.size(), 1u);
  EXPECT_EQ(p.got[0].size(), 100003u);
}

TEST(NetstringReceiver, HugeLengthsAreParseErrorsEvenWithoutALimit) {
  for (size_t limit : {size_t{99999}, SIZE_MAX}) {
    StringTransport t;
    Netstrings p;
    p.setMaxLength(limit);
    p.makeConnection(&t);
    EXPECT_NO_THROW(p.dataReceived("99999999999999999999999:x,"));
    EXPECT_TRUE(p.brokenPeer()) << limit;
    EXPECT_TRUE(t.loseConnectionCalled()) << limit;
  }
  StringTransport t;
  Netstrings p;
  p.setMaxLength(SIZE_MAX);
  p.makeConnection(&t);
  p.dataReceived("18446744073709551615:");  // SIZE_MAX itself: a legal length, just never complete
  p.dataReceived("abc");
  EXPECT_FALSE(p.brokenPeer()) << p.parseError();
  EXPECT_TRUE(p.got.empty());
}

TEST(IntNStringReceiver, OnlyOneTwoOrFourBytePrefixes) {
  for (int bad : {-1, 0, 3, 5, 8}) {
    EXPECT_THROW(IntNStringReceiver{bad}, std::invalid_argument) << bad;
  }
  for (int good : {1, 2, 4}) EXPECT_NO_THROW(IntNStringReceiver{good});
}

// Feeds `stream` one byte per call. Copying the partial message on every call made this
// quadratic: 4 MiB took hours; amortised appends take well under a second.
template <class P>
void feedByteByByte(P& p, const std::string& stream) {
  for (char c : stream) p.dataReceived(std::string_view(&c, 1));
}

TEST(Framers, AMessageArrivingOneByteAtATimeCostsLinearTime) {
  constexpr size_t kSize = 4 << 20;
  const std::string body(kSize, 'm');
  {
    StringTransport t;
    Lines p;
    p.setMaxLength(kSize);
    p.makeConnection(&t);
    feedByteByByte(p, body + "\r\n");
    ASSERT_EQ(p.got.size(), 1u);
    EXPECT_EQ(p.got[0].size(), kSize);
  }
  {
    StringTransport t;
    Strings<Int32StringReceiver> p;
    p.setMaxLength(kSize);
    p.makeConnection(&t);
    feedByteByByte(p, prefixed(4, body));
    ASSERT_EQ(p.got.size(), 1u);
    EXPECT_EQ(p.got[0].size(), kSize);
  }
  {
    StringTransport t;
    Netstrings p;
    p.setMaxLength(kSize);
    p.makeConnection(&t);
    feedByteByByte(p, std::to_string(kSize) + ":" + body + ",");
    ASSERT_EQ(p.got.size(), 1u);
    EXPECT_EQ(p.got[0].size(), kSize);
  }
}

TEST(Framers, AnExceptionFromACallbackLeavesTheFramerUsable) {
  StringTransport t;
  Lines p;
  p.onLine = [](Lines&, std::string_view line) {
    if (line == "boom") throw std::runtime_error("boom");
  };
  p.makeConnection(&t);
  EXPECT_THROW(p.dataReceived("boom\r\n"), std::runtime_error);
  p.dataReceived("after\r\n");  // not mistaken for re-entrant data and queued forever
  EXPECT_EQ(p.got, (std::vector<std::string>{"boom", "after"}));
}

}  // namespace
}  // namespace twist
