#include "twist/reactor/clock.h"

#include <cmath>
#include <exception>
#include <stdexcept>

namespace twist::task {

void Clock::advance(double amount) {
  if (std::isnan(amount)) throw std::invalid_argument("Clock::advance: NaN");
  now_ += amount;
  std::exception_ptr first;
  while (!queue_.empty() && queue_.nextTime() <= now_) {
    queue_.runDue(now_, [&first] {
      if (!first) first = std::current_exception();
    });
  }
  if (first) std::rethrow_exception(first);
}

}  // namespace twist::task
