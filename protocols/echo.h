// Public. Echo (RFC 862): sends back everything it receives.
#pragma once

#include <string_view>

#include "protocols/protocol.h"

namespace twist {

class Echo : public Protocol {
 public:
  void dataReceived(std::string_view data) override { transport()->write(data); }
};

}  // namespace twist
