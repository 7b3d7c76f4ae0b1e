// tests/support/sanitizer.h — whether this build runs under AddressSanitizer
// (g++ defines __SANITIZE_ADDRESS__, clang answers __has_feature), so that
// property tests can run fewer cases where the same work is ~25x slower.
#pragma once

namespace contpte::testing {

#if defined(__SANITIZE_ADDRESS__)
inline constexpr bool kAsan = true;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
inline constexpr bool kAsan = true;
#else
inline constexpr bool kAsan = false;
#endif
#else
inline constexpr bool kAsan = false;
#endif

}  // namespace contpte::testing
