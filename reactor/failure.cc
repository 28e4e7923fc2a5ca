#include "reactor/failure.h"

#include <cxxabi.h>

#include <cstdlib>
#include <memory>
#include <stdexcept>
#include <typeinfo>

namespace twist {

void Failure::raise() const {
  if (!error_) throw std::logic_error("Failure::raise on an empty Failure");
  std::rethrow_exception(error_);
}

std::string Failure::getErrorMessage() const {
  if (!error_) return "(no failure)";
  try {
    std::rethrow_exception(error_);
  } catch (const std::exception& e) {
    return e.what();
  } catch (...) {
    return "non-standard exception of type " + typeName();
  }
}

std::string Failure::typeName() const {
  if (!error_) return "(none)";
  const std::type_info* type = nullptr;
  try {
    std::rethrow_exception(error_);
  } catch (...) {
    type = abi::__cxa_current_exception_type();
  }
  if (type == nullptr) return "(unknown)";
  int status = 0;
  std::unique_ptr<char, void (*)(void*)> name(
      abi::__cxa_demangle(type->name(), nullptr, nullptr, &status), std::free);
  return status == 0 && name ? std::string(name.get()) : std::string(type->name());
}

std::string Failure::toString() const {
  return "[Failure instance: " + typeName() + ": " + getErrorMessage() + "]";
}

}  // namespace twist
