#include "twist/protocols/basic.h"

#include <algorithm>
#include <cstdint>
#include <cstring>
#if defined(__SSE2__)
#include <emmintrin.h>
#endif
#include <stdexcept>
#include <string>

#include "twist/reactor/log.h"

namespace twist {
namespace {

// Feeds `data` to a framer. Complete messages in a fresh chunk are parsed straight from the
// caller's bytes (no copy); only what is left over is kept in `b.pending`. Data that arrives
// while the framer is inside its own callbacks (dataReceived called re-entrantly) is queued in
// `b.incoming`, behind the current input. `parse` returns how many bytes it consumed; the views
// it hands out point into storage nothing else changes during the call.
template <class Parse>
void feed(detail::FrameBuffer& b, std::string_view data, Parse&& parse) {
  if (b.busy) {
    b.incoming.append(data);
    return;
  }
  b.busy = true;
  struct Idle {
    bool& busy;
    ~Idle() { busy = false; }  // also when a callback throws
  } idle{b.busy};
  if (b.pending.empty()) {
    size_t used = parse(data);
    b.pending.assign(data.substr(used));
  } else {
    b.pending.append(data);
    b.pending.erase(0, parse(std::string_view(b.pending)));
  }
  while (!b.incoming.empty()) {
    b.pending.append(b.incoming);
    b.incoming.clear();
    b.pending.erase(0, parse(std::string_view(b.pending)));
  }
}

}  // namespace

// ---- LineReceiver ----

bool LineReceiver::stopped() const {
  return paused_ || (transport() != nullptr && transport()->disconnecting());
}

void LineReceiver::dataReceived(std::string_view data) {
  feed(buffer_, data, [this](std::string_view in) { return parse(in); });
}

// Finds the positions of one byte (a delimiter's last byte) in `input`, front to back. Short
// lines are the costly case for a line splitter: one memchr call per line costs more than the
// line. So candidates are found 16 bytes at a time with an SSE2 compare into a bitmask, and
// walked bit by bit; when the current block holds none, the rest goes to memchr, which is
// faster over long distances. bench/parse_bench measures both sizes.
class ByteScanner {
 public:
  ByteScanner(std::string_view input, char byte)
      : base_(input.data()), n_(input.size()), byte_(byte) {}
  char byte() const { return byte_; }
  void setByte(char b) {
    byte_ = b;
    blockStart_ = kNone;
  }
  // The first position >= from holding the byte, or npos.
  [[gnu::always_inline]] size_t next(size_t from) {
    bool scanned = false;
    while (from < n_) {
#if defined(__SSE2__)
      size_t block = from - (from % 16);
      if (block + 16 <= n_ && !scanned) {
        if (block != blockStart_) {
          __m128i bytes = _mm_loadu_si128(reinterpret_cast<const __m128i*>(base_ + block));
          mask_ =
              static_cast<uint32_t>(_mm_movemask_epi8(_mm_cmpeq_epi8(bytes, _mm_set1_epi8(byte_))));
          blockStart_ = block;
        }
        uint32_t m = mask_ & (~0u << (from - block));
        if (m != 0) return block + static_cast<size_t>(__builtin_ctz(m));
        from = block + 16;
        scanned = true;  // nothing in this block: the rest goes to memchr
        continue;
      }
#endif
      const void* hit = std::memchr(base_ + from, byte_, n_ - from);
      return hit == nullptr ? std::string_view::npos
                            : static_cast<size_t>(static_cast<const char*>(hit) - base_);
    }
    return std::string_view::npos;
  }

 private:
  static constexpr size_t kNone = ~size_t{0};
  const char* base_;
  size_t n_;
  char byte_;
  size_t blockStart_ = kNone;
  uint32_t mask_ = 0;
};

// Where the next `delimiter` starts at or after `from`, or npos.
[[gnu::always_inline]] static inline size_t findDelimiter(ByteScanner& scan, std::string_view input,
                                                          size_t from, std::string_view delimiter) {
  const size_t d = delimiter.size();
  if (scan.byte() != delimiter[d - 1]) scan.setByte(delimiter[d - 1]);
  const char* base = input.data();
  for (size_t p = scan.next(from + d - 1); p != std::string_view::npos; p = scan.next(p + 1)) {
    // One- and two-byte delimiters ("\n", "\r\n") need no memcmp call.
    if (d == 1 || (d == 2 ? base[p - 1] == delimiter[0]
                          : std::memcmp(base + p - (d - 1), delimiter.data(), d - 1) == 0)) {
      return p - (d - 1);
    }
  }
  return std::string_view::npos;
}

size_t LineReceiver::parse(std::string_view input) {
  parsing_ = input;
  restFrom_ = input.size();
  cleared_ = false;
  ByteScanner scan(input, delimiter_.back());
  const char* base = input.data();
  size_t pos = 0;
  // The partial line carried over from the last read was searched already (when `input` is the
  // buffer that holds it): search only its last bytes again, where a delimiter may straddle.
  size_t searchFrom = 0;
  if (scanned_ > 0 && input.data() == buffer_.pending.data()) {
    searchFrom = scanned_ >= delimiter_.size() ? scanned_ - (delimiter_.size() - 1) : 0;
  }
  scanned_ = 0;
  while (pos < input.size() && !stopped()) {
    if (!lineMode_) {
      std::string_view raw(base + pos, input.size() - pos);
      pos = input.size();
      restFrom_ = input.size();
      rawDataReceived(raw);
      continue;
    }
    // Read afresh for every line: a callback may have changed the delimiter.
    const size_t d = delimiter_.size();
    size_t end = findDelimiter(scan, input, std::max(pos, searchFrom), delimiter_);
    searchFrom = 0;
    if (end == std::string_view::npos) {
      // A partial line that can no longer end within the limit is already too long.
      size_t partial = input.size() - pos;
      if (partial >= d && partial - d >= maxLength_) {
        pos = input.size();
        lineLengthExceeded(std::string_view(base + input.size() - partial, partial));
      } else {
        scanned_ = partial;
      }
      break;
    }
    if (end - pos > maxLength_) {
      std::string_view tooLong(base + pos, input.size() - pos);
      pos = input.size();
      lineLengthExceeded(tooLong);
      break;
    }
    std::string_view line(base + pos, end - pos);
    pos = end + d;
    restFrom_ = pos;
    lineReceived(line);
    if (cleared_) {  // clearLineBuffer() took the rest
      pos = input.size();
      break;
    }
  }
  cleared_ = false;
  parsing_ = {};
  return pos;
}

void LineReceiver::setDelimiter(std::string delimiter) {
  if (delimiter.empty())
    throw std::invalid_argument("LineReceiver: the delimiter must not be empty");
  delimiter_ = std::move(delimiter);
  scanned_ = 0;
}

void LineReceiver::sendLine(std::string_view line) {
  std::string_view parts[] = {line, delimiter_};
  transport()->writeSequence(parts);
}

void LineReceiver::setLineMode(std::string_view extra) {
  lineMode_ = true;
  scanned_ = 0;
  if (!extra.empty()) dataReceived(extra);
}

std::string LineReceiver::clearLineBuffer() {
  std::string out;
  scanned_ = 0;
  if (buffer_.busy) {
    // Inside a callback: the rest of the input being parsed, then what arrived re-entrantly.
    out.assign(parsing_.substr(restFrom_));
    restFrom_ = parsing_.size();
    cleared_ = true;
    out += buffer_.incoming;
    buffer_.incoming.clear();
    return out;
  }
  out.swap(buffer_.pending);
  return out;
}

void LineReceiver::pauseProducing() {
  paused_ = true;
  if (transport() != nullptr) transport()->pauseProducing();
}

void LineReceiver::resumeProducing() {
  paused_ = false;
  if (transport() != nullptr) transport()->resumeProducing();
  dataReceived("");  // lines that arrived while paused
}

void LineReceiver::lineLengthExceeded(std::string_view) {
  if (transport() != nullptr) transport()->loseConnection();
}

// ---- IntNStringReceiver ----

StringTooLongError::StringTooLongError(size_t length, size_t limit)
    : Error("StringTooLongError: a string of " + std::to_string(length) +
            " bytes does not fit a length prefix whose largest value is " + std::to_string(limit)) {
}

bool IntNStringReceiver::stopped() const {
  return paused_ || (transport() != nullptr && transport()->disconnecting());
}

IntNStringReceiver::IntNStringReceiver(int prefixBytes) : prefixBytes_(prefixBytes) {
  if (prefixBytes != 1 && prefixBytes != 2 && prefixBytes != 4) {
    throw std::invalid_argument("IntNStringReceiver: the prefix is 1, 2 or 4 bytes, not " +
                                std::to_string(prefixBytes));
  }
}

void IntNStringReceiver::dataReceived(std::string_view data) {
  feed(buffer_, data, [this](std::string_view in) { return parse(in); });
}

size_t IntNStringReceiver::parse(std::string_view input) {
  const size_t n = static_cast<size_t>(prefixBytes_);
  size_t pos = 0;
  while (!stopped() && input.size() - pos >= n) {
    uint64_t length = 0;
    for (size_t i = 0; i < n; ++i)
      length = (length << 8) | static_cast<unsigned char>(input[pos + i]);
    if (length > maxLength_) {
      pos = input.size();  // the stream cannot be resynchronised: drop it
      lengthLimitExceeded(static_cast<size_t>(length));
      break;
    }
    if (input.size() - pos - n < length) break;
    std::string_view s = input.substr(pos + n, static_cast<size_t>(length));
    pos += n + static_cast<size_t>(length);
    stringReceived(s);
  }
  return pos;
}

void IntNStringReceiver::sendString(std::string_view s) {
  const uint64_t limit = (uint64_t{1} << (8 * prefixBytes_)) - 1;
  if (s.size() > limit) throw StringTooLongError(s.size(), static_cast<size_t>(limit));
  char prefix[4];
  for (int i = 0; i < prefixBytes_; ++i) {
    prefix[i] = static_cast<char>((s.size() >> (8 * (prefixBytes_ - 1 - i))) & 0xff);
  }
  std::string_view parts[] = {std::string_view(prefix, static_cast<size_t>(prefixBytes_)), s};
  transport()->writeSequence(parts);
}

void IntNStringReceiver::pauseProducing() {
  paused_ = true;
  if (transport() != nullptr) transport()->pauseProducing();
}

void IntNStringReceiver::resumeProducing() {
  paused_ = false;
  if (transport() != nullptr) transport()->resumeProducing();
  dataReceived("");
}

void IntNStringReceiver::lengthLimitExceeded(size_t) {
  if (transport() != nullptr) transport()->loseConnection();
}

// ---- NetstringReceiver ----

bool NetstringReceiver::stopped() const {
  return brokenPeer() || (transport() != nullptr && transport()->disconnecting());
}

void NetstringReceiver::dataReceived(std::string_view data) {
  feed(buffer_, data, [this](std::string_view in) { return parse(in); });
}

size_t NetstringReceiver::parse(std::string_view input) {
  const size_t maxDigits = std::to_string(maxLength_).size();
  size_t pos = 0;
  while (pos < input.size() && !stopped()) {
    // The colon, if it is there, is within the first maxDigits + 1 bytes.
    size_t colon = input.substr(pos, maxDigits + 1).find(':');
    std::string_view digits =
        input.substr(pos, colon == std::string_view::npos ? maxDigits + 1 : colon);
    // Checked character by character, in stream order, so the first fault reported is the
    // same however the input was split (the fuzzer holds us to it).
    size_t length = 0;
    for (size_t i = 0; i < digits.size(); ++i) {
      char c = digits[i];
      if (c < '0' || c > '9') {
        fail(std::string("invalid character in a netstring length: '") + c + "'");
        return input.size();
      }
      if (i == 1 && digits[0] == '0') {
        fail("netstring length has a leading zero");
        return input.size();
      }
      if (i + 1 > maxDigits) {
        fail("netstring length has more digits than the maximum " + std::to_string(maxLength_));
        return input.size();
      }
      size_t digit = static_cast<size_t>(c - '0');
      if (length > (SIZE_MAX - digit) / 10) {
        fail("netstring length exceeds the maximum " + std::to_string(maxLength_));
        return input.size();
      }
      length = length * 10 + digit;
    }
    if (colon == std::string_view::npos) break;  // the length goes on in the next chunk
    colon += pos;
    if (digits.empty()) {
      fail("netstring has no length before ':'");
      return input.size();
    }
    if (length > maxLength_) {
      fail("netstring length " + std::string(digits) + " exceeds the maximum " +
           std::to_string(maxLength_));
      return input.size();
    }
    size_t dataStart = colon + 1;
    if (input.size() - dataStart <= length) break;  // wait for the data and the comma
    if (input[dataStart + length] != ',') {
      fail("netstring of length " + std::to_string(length) + " is not followed by ','");
      return input.size();
    }
    std::string_view s = input.substr(dataStart, length);
    pos = dataStart + length + 1;
    stringReceived(s);
  }
  return pos;
}

void NetstringReceiver::fail(const std::string& why) {
  parseError_ = why;
  netstringParseError(NetstringParseError(why));
}

void NetstringReceiver::netstringParseError(const NetstringParseError& error) {
  std::string peer = transport() != nullptr ? transport()->getPeer().toString() : "(no peer)";
  log::warn("basic.NetstringReceiver",
            std::string("Closing the connection from ") + peer + ": " + error.what());
  if (transport() != nullptr) transport()->loseConnection();
}

void NetstringReceiver::sendString(std::string_view s) {
  std::string prefix = std::to_string(s.size()) + ":";
  std::string_view parts[] = {prefix, s, ","};
  transport()->writeSequence(parts);
}

}  // namespace twist
