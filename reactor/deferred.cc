#include "twist/reactor/deferred.h"

#include "twist/reactor/log.h"

namespace twist::detail {

void logUnhandledFailure(const Failure& f) {
  log::error("defer", "Unhandled error in Deferred: " + f.toString());
}

}  // namespace twist::detail
