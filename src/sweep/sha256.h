// sweep/sha256.h — SHA-256 (FIPS 180-4) of bytes and of files.
//
// Owns: the digests a sweep key carries (`input_sha256`, `core_sha256`), so
// that results of a changed input are never mistaken for results of the
// input a spec names now.
// Must not know: what the bytes are.
#pragma once

#include <filesystem>
#include <string>
#include <string_view>

namespace contpte::sweep {

// Lower-case hex digest of `bytes`.
std::string sha256_hex(std::string_view bytes);

// The digest of a file's contents; throws std::runtime_error naming the file
// when it cannot be read.
std::string sha256_file(const std::filesystem::path& path);

}  // namespace contpte::sweep
