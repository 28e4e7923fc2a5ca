// Public. Framing protocols (twisted.protocols.basic): lines, length-prefixed strings and
// netstrings. Each one turns the byte stream into messages whatever way it was split, and closes
// the connection (by default) when a peer breaks the limits or the format.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "twist/reactor/errors.h"
#include "twist/reactor/interfaces.h"

namespace twist {

namespace detail {
// What a framer has received and not consumed yet. Bytes are appended (amortised O(1) each)
// and the unconsumed rest moves only when something before it was consumed, so a message that
// arrives one byte per read costs O(its length), not O(length squared).
struct FrameBuffer {
  std::string pending;   // unconsumed input; parsing works on a view of it
  std::string incoming;  // delivered re-entrantly (from inside a callback): parsed after it
  bool busy = false;     // a parse is running
};
}  // namespace detail

// Line-oriented protocol with a raw mode (Twisted's LineReceiver).
//  - lineReceived(line) for each line, without its delimiter ("\r\n" unless set otherwise).
//  - A line longer than maxLength bytes (or a partial line that can no longer end in time) goes
//    to lineLengthExceeded, which closes the connection by default.
//  - setRawMode(): later bytes go to rawDataReceived; setLineMode(extra) switches back and
//    parses `extra` first.
//  - pauseProducing(): no lineReceived until resumeProducing() (the transport stops reading).
//  - After a callback asks to close the connection, no further lines are delivered.
// `line` views are valid during the call only.
class LineReceiver : public Protocol {
 public:
  static constexpr size_t kDefaultMaxLength = 16384;

  void dataReceived(std::string_view data) override;

  // Sends `line` followed by the delimiter.
  void sendLine(std::string_view line);
  void setRawMode() { lineMode_ = false; }
  void setLineMode(std::string_view extra = "");
  // Returns and forgets the bytes buffered so far (a partial line).
  std::string clearLineBuffer();
  void pauseProducing();
  void resumeProducing();
  bool paused() const { return paused_; }

  // Throws std::invalid_argument for an empty delimiter. Takes effect at once, also from
  // inside lineReceived (for the rest of the bytes already received).
  void setDelimiter(std::string delimiter);
  const std::string& delimiter() const { return delimiter_; }
  // Any value, up to SIZE_MAX (no limit).
  void setMaxLength(size_t n) { maxLength_ = n; }
  size_t maxLength() const { return maxLength_; }

 protected:
  virtual void lineReceived(std::string_view line) {}
  virtual void rawDataReceived(std::string_view data) {}
  // Default: loseConnection().
  virtual void lineLengthExceeded(std::string_view line);

 private:
  // Parses `data` (a view into buffer_ or the caller's chunk); returns how much it consumed.
  size_t parse(std::string_view data);
  bool stopped() const;

  std::string delimiter_ = "\r\n";
  size_t maxLength_ = kDefaultMaxLength;
  detail::FrameBuffer buffer_;
  std::string_view parsing_;  // the input parse() is working through
  size_t restFrom_ = 0;       // where its unparsed rest starts (for clearLineBuffer)
  bool cleared_ = false;      // clearLineBuffer() took the rest during a callback
  // How many bytes at the start of buffer_.pending (a partial line) were already searched for
  // the delimiter: the next search starts near their end instead of at the front.
  size_t scanned_ = 0;
  bool lineMode_ = true;
  bool paused_ = false;
};

// Lines only, no raw mode (Twisted's LineOnlyReceiver): lineReceived, sendLine, maxLength,
// lineLengthExceeded.
class LineOnlyReceiver : public LineReceiver {
 private:
  using LineReceiver::setLineMode;
  using LineReceiver::setRawMode;
};

// A string was too long for sendString's length prefix.
class StringTooLongError : public Error {
 public:
  StringTooLongError(size_t length, size_t limit);
};

// Strings each preceded by their length as an N-byte big-endian integer (Twisted's
// Int32StringReceiver and friends). stringReceived(s) per string; a declared length above
// maxLength goes to lengthLimitExceeded (default: close).
class IntNStringReceiver : public Protocol {
 public:
  // prefixBytes is 1, 2 or 4 (std::invalid_argument otherwise).
  explicit IntNStringReceiver(int prefixBytes);

  void dataReceived(std::string_view data) override;
  // Sends `s` with its length prefix; throws StringTooLongError if the prefix cannot hold it.
  void sendString(std::string_view s);
  void pauseProducing();
  void resumeProducing();
  void setMaxLength(size_t n) { maxLength_ = n; }
  size_t maxLength() const { return maxLength_; }
  int prefixBytes() const { return prefixBytes_; }

 protected:
  virtual void stringReceived(std::string_view s) {}
  // Default: loseConnection().
  virtual void lengthLimitExceeded(size_t length);

 private:
  size_t parse(std::string_view data);
  bool stopped() const;

  int prefixBytes_;
  size_t maxLength_ = 99999;  // as Twisted
  detail::FrameBuffer buffer_;
  bool paused_ = false;
};

class Int32StringReceiver : public IntNStringReceiver {
 public:
  Int32StringReceiver() : IntNStringReceiver(4) {}
};
class Int16StringReceiver : public IntNStringReceiver {
 public:
  Int16StringReceiver() : IntNStringReceiver(2) {}
};
class Int8StringReceiver : public IntNStringReceiver {
 public:
  Int8StringReceiver() : IntNStringReceiver(1) {}
};

// What was wrong with a netstring.
class NetstringParseError : public Error {
 public:
  using Error::Error;
};

// Netstrings, "5:hello," (Twisted's NetstringReceiver), parsed strictly: the length is decimal
// digits without leading zeros, at most maxLength; then ':', the data, ','. Anything else, or a
// longer string, goes to netstringParseError (default: log it and close the connection); then
// nothing more is parsed. parseError() says what was wrong.
class NetstringReceiver : public Protocol {
 public:
  void dataReceived(std::string_view data) override;
  void sendString(std::string_view s);
  void setMaxLength(size_t n) { maxLength_ = n; }
  size_t maxLength() const { return maxLength_; }
  // Empty until the peer sent something malformed.
  const std::string& parseError() const { return parseError_; }
  bool brokenPeer() const { return !parseError_.empty(); }

 protected:
  virtual void stringReceived(std::string_view s) {}
  // Default: log `error` with the peer's address and loseConnection().
  virtual void netstringParseError(const NetstringParseError& error);

 private:
  size_t parse(std::string_view data);
  bool stopped() const;
  void fail(const std::string& why);

  size_t maxLength_ = 99999;  // as Twisted
  detail::FrameBuffer buffer_;
  std::string parseError_;
};

}  // namespace twist
