// A tiny program for `contpte record` tests: every memory-management
// system call replay models, with accesses between them, and a fork.
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>

namespace {

void touch(volatile char* p, std::size_t len, std::size_t step) {
  for (std::size_t i = 0; i < len; i += step) p[i] = static_cast<char>(i);
}

}  // namespace

int main() {
  constexpr std::size_t kLen = 1 << 20;
  auto* p = static_cast<volatile char*>(mmap(nullptr, kLen, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
  if (p == MAP_FAILED) return 1;
  touch(p, kLen, 4096);
  madvise(const_cast<char*>(p), kLen / 2, MADV_DONTNEED);
  mprotect(const_cast<char*>(p) + kLen / 2, kLen / 2, PROT_READ);
  long sum = 0;
  for (std::size_t i = kLen / 2; i < kLen; i += 4096) sum += p[i];
  munmap(const_cast<char*>(p) + kLen / 2, kLen / 2);
  void* q = mremap(const_cast<char*>(p), kLen / 2, kLen * 2, MREMAP_MAYMOVE);
  if (q == MAP_FAILED) return 2;
  touch(static_cast<volatile char*>(q), kLen * 2, 4096);
  // The brk heap.
  auto* h = static_cast<volatile char*>(sbrk(64 << 10));
  if (h == reinterpret_cast<void*>(-1)) return 3;
  touch(h, 64 << 10, 4096);
  if (sbrk(64 << 10) == reinterpret_cast<void*>(-1)) return 3;  // grows the heap again
  touch(h + (64 << 10), 64 << 10, 4096);
  const pid_t child = fork();
  if (child == 0) {
    touch(static_cast<volatile char*>(q), 64 << 10, 4096);  // copy-on-write in the child
    _exit(0);
  }
  int status = 0;
  waitpid(child, &status, 0);
  munmap(q, kLen * 2);
  return sum == 0 && WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : 4;
}
