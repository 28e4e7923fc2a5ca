// twist's headers use C++20 (coroutines, concepts, designated initializers): say so plainly
// instead of failing deep inside them. Included by the headers every other one includes.
#pragma once

#if __cplusplus < 202002L
#error \
    "twist needs C++20: compile the code that includes twist's headers with -std=c++20 (with Bazel: copts = [\"-std=c++20\"], or build --cxxopt=-std=c++20 in .bazelrc; see twist's README, 'Using twist from another project')"
#endif
