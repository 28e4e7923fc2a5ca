// A prefork parent whose workers misbehave, for tests/prefork_test.cc:
//   prefork_worker crash     workers exit at once with status 3 (a crash loop)
//   prefork_worker stubborn  workers ignore SIGTERM (stopping must SIGKILL them)
// Prints "ready" before the workers are forked, and each stubborn worker "worker ignores
// SIGTERM" once it does; run() logs to stderr.
#include <signal.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>

#include "twist/reactor/prefork.h"

int main(int argc, char** argv) {
  bool crash = argc > 1 && std::strcmp(argv[1], "crash") == 0;
  std::printf("ready\n");
  std::fflush(stdout);
  return twist::prefork::run(
      [crash](size_t) {
        if (crash) return 3;
        ::signal(SIGTERM, SIG_IGN);
        std::printf("worker ignores SIGTERM\n");  // the test signals only after both say so
        std::fflush(stdout);
        for (;;) ::pause();
      },
      {.workers = 2, .restartDelay = 0.05, .stopTimeout = 0.3});
}
