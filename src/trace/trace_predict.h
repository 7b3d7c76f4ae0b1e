// trace/trace_predict.h — version 3's prediction state, shared by the trace
// writer and reader (trace/trace.{h,cpp}) so that both code alike.
// Not an interface of its own: only trace.h and trace.cpp use it.
#pragma once

#include <algorithm>
#include <cstdint>
#include <vector>

namespace contpte::trace_detail {

// Version 3's prediction of data accesses and block runs, kept alike by the
// writer and the reader (docs/trace-format.md "Version 3"). A data access
// has a context: the block that ran last in the current thread and how
// many data accesses followed it (the k-th access of a block is usually the
// same instruction as last time, striding through memory as it did then).
// A context predicts its next access at its last offset plus its last
// stride, in its last mapping. A block predicts the block that ran after it
// last time.
struct Predictor {
  static constexpr std::uint32_t kNone = ~0u;
  static constexpr unsigned kSlots = 16;  // accesses past the 15th share the last context
  struct Context {
    std::uint32_t map = kNone;
    std::uint64_t offset = 0;
    std::uint64_t stride = 0;  // modulo 2^64
  };
  std::vector<Context> contexts;        // kSlots per block
  std::vector<std::uint32_t> next;      // per block: the block that ran after it last
  std::uint32_t block = kNone;          // the current thread's last block run
  unsigned k = 0;                       // data accesses since it ran

  void define_block() {
    contexts.resize(contexts.size() + kSlots);
    next.push_back(kNone);
  }
  // A stream, thread or program switch: the next access has no context.
  void forget() { block = kNone, k = 0; }
  bool predicts(std::uint32_t b) const { return block != kNone && next[block] == b; }
  void run(std::uint32_t b) {
    if (block != kNone) next[block] = b;
    block = b, k = 0;
  }
  Context* context() {
    if (block == kNone) return nullptr;
    return &contexts[std::size_t{block} * kSlots + std::min(k, kSlots - 1)];
  }
  // The mapping and offset base a data access in mapping `map` is coded
  // against: the context's prediction when it is in the same mapping.
  static bool same_map(const Context* c, std::uint32_t map) { return c && c->map == map; }
  static void learn(Context* c, std::uint32_t map, std::uint64_t offset) {
    if (!c) return;
    c->stride = c->map == map ? offset - c->offset : 0;
    c->map = map, c->offset = offset;
  }
};

}  // namespace contpte::trace_detail
