// The user's own header of the same name as one of twist's.
#pragma once

namespace consumer {
inline const char* greeting() { return "kv"; }
}  // namespace consumer
