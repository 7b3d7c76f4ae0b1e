// explore/readers.cpp — lockless readers (ptep_get_lockless): interleaved
// step by step (re-executed from their start with the values their earlier
// loads returned), or, under the reduction `contpte explore` uses, observed:
// every value sequence their loads can see over one execution of the other
// branches is enumerated (below, "lockless readers as observers").
//
// Promises: a lockless reader returns a value the PTE held (its AF/dirty
// possibly gathered from the block) — never a mix of two states — or the
// finding `reader` names the value and a linearization that returns it; a
// reader that cannot return once every other step is done is `deadlock`.
#include "explore/explorer_impl.h"

#include <cstring>

#include <functional>
#include <stdexcept>

namespace contpte {

// Re-executes the reader from its start with the values it has loaded so
// far, until it reaches a step it has not taken (its pending step) or
// returns.
void Explorer::Impl::replay_reader(unsigned b) {
  BranchRun& r = runs[b];
  r.replay_idx = 0;
  r.env = StepEnv(x, b);
  try {
    r.result = ptep_get_lockless(r.env, spec(b).slot);
    r.done = true;
  } catch (const ReaderStopped&) {
  }
}

void Explorer::Impl::reader_step(unsigned b) {
  BranchRun& r = runs[b];
  const Footprint f = r.pending;
  StepRecord rec;
  rec.va = va_of(spec(b).slot.ptr());
  if (f.kind == StepKind::Load) {
    rec.va = va_of(f.slot);
    rec.before = rec.after = *f.slot;
    r.log.push_back(*f.slot);
  } else {
    rec.note = "saw a torn block; starts again";
    r.log.push_back(Pte{});
  }
  record(b, f, std::move(rec));
  if (f.kind == StepKind::ReaderRetry) r.attempt_start = steps.size();
  replay_reader(b);
  if (r.done) steps.back().note = fmt::format("returns {:#018x}", r.result->val);
  after_step();
}

// ---- lockless readers as observers ---------------------------------------
//
// A lockless reader writes nothing, so it cannot change what the other
// branches do: for one execution of theirs (one class of equivalent
// interleavings, with its happens-before order), what the reader can
// return depends only on which memory states its loads see. A state a
// load may see is a cut: a set of the other branches' steps closed under
// happens-before (every linearization of the class passes through each
// cut), written as each branch's step count. A load of word w at cut C
// reads the last write to w in C (writes to one word are ordered), or
// any later write e to w, the cut growing to C ∪ ↓e, the smallest cut
// where w holds e's value. The smaller cut can do all the larger can, so
// per value only the earliest is taken. Retries keep no state (as in
// ptep_get_lockless), so an attempt is (cut, values loaded so far), and
// each is visited once. Exactly the values the reader can return when
// interleaved in every order, at a cost independent of how many orders.

// The reader's move at trie node `node`, for the attempt `log` (the
// values along the path from the root to `node`).
const Explorer::Impl::ReaderMove& Explorer::Impl::reader_move(unsigned b, std::uint32_t node,
                                                             const std::vector<Pte>& log) {
  ReaderMove& m = reader_moves[b][node];
  if (m.kind != ReaderMove::Kind::Unknown) return m;
  BranchRun& r = runs[b];
  r.log = log;
  r.done = false;
  r.result.reset();
  replay_reader(b);
  if (r.done) {
    m.kind = ReaderMove::Kind::Returns;
    m.value = *r.result;
  } else if (r.pending.kind == StepKind::ReaderRetry) {
    m.kind = ReaderMove::Kind::Retry;
  } else {
    m.kind = ReaderMove::Kind::Load;
    m.slot = r.pending.slot;
  }
  return m;
}

// The trie node after `node` when its load returned `v`.
std::uint32_t Explorer::Impl::reader_child(unsigned b, std::uint32_t node, Pte v) {
  for (const auto& [value, child] : reader_moves[b][node].next)
    if (value == v) return child;
  const auto child = static_cast<std::uint32_t>(reader_moves[b].size());
  const std::uint32_t parent = reader_moves[b][node].gathered;
  const std::uint32_t flags = (parent & (kGatheredYoung | kGatheredDirty)) |
                              (node != 0 && pte_young(v) ? kGatheredYoung : 0) |
                              (node != 0 && pte_dirty(v) ? kGatheredDirty : 0);
  const std::uint32_t g =
      gathered_child(b, parent & ~(kGatheredYoung | kGatheredDirty), node == 0 ? v : strip_ad(v));
  reader_moves[b].emplace_back();  // may move the vector: index again below
  reader_moves[b].back().gathered = g | flags;
  reader_moves[b][node].next.emplace_back(v, child);
  return child;
}

// The node of the gathered-values trie after `node` for the value `v`
// (already stripped of AF and dirty unless it is the attempt's first).
std::uint32_t Explorer::Impl::gathered_child(unsigned b, std::uint32_t node, Pte v) {
  auto& nodes = gathered_nodes[b];
  for (const auto& [value, child] : nodes[node])
    if (value == v) return child;
  const auto child = static_cast<std::uint32_t>(nodes.size());
  if (child >= kGatheredDirty) throw std::length_error("explorer: too many reader states");
  nodes.emplace_back();
  nodes[node].emplace_back(v, child);
  return child;
}

std::vector<Explorer::Impl::WordWrites>::const_iterator Explorer::Impl::word_lower_bound(const Pte* w) const {
  return std::lower_bound(obs_words.begin(), obs_words.end(), w,
                          [](const WordWrites& e, const Pte* p) { return std::less<const Pte*>{}(e.word, p); });
}

const Explorer::Impl::WordWrites* Explorer::Impl::word_writes(const Pte* w) const {
  auto it = word_lower_bound(w);
  return it != obs_words.end() && it->word == w ? &*it : nullptr;
}

const std::vector<Explorer::Impl::ObsWrite>* Explorer::Impl::writes_of(const Pte* w) const {
  const WordWrites* e = word_writes(w);
  return e ? &e->writes : nullptr;
}

Pte Explorer::Impl::value_at(const Pte* w, const Clock& c) const {
  const WordWrites* ww = word_writes(w);
  if (!ww) return *w;  // never written in this execution
  Pte v = ww->initial;
  for (const ObsWrite& e : ww->writes) {
    if (c[e.branch] < e.pos) break;
    v = e.value;
  }
  return v;
}

void Explorer::Impl::index_writes() {
  obs_words.clear();
  for (std::size_t i = 0; i < steps.size(); ++i) {
    if (!steps[i].wrote || !writes(fps[i].kind) || !fps[i].slot) continue;
    const Pte* w = fps[i].slot;
    auto at = word_lower_bound(w);
    if (at == obs_words.end() || at->word != w) at = obs_words.insert(at, WordWrites{w, steps[i].before, {}});
    const unsigned q = steps[i].branch;
    obs_words[static_cast<std::size_t>(at - obs_words.begin())].writes.push_back({i, q, clocks[i][q], steps[i].after});
  }
}

// The reader's attempt from (cut, log): runs it and branches on what its
// next load may return.
void Explorer::Impl::observe_from(unsigned b, const Clock& cut, std::vector<Pte>& log, std::uint32_t node) {
  if (!obs_seen.insert(ObsKey{cut, reader_moves[b][node].gathered})) return;
  ++obs_nodes;
  const ReaderMove& m = reader_move(b, node, log);
  if (m.kind == ReaderMove::Kind::Returns) {
    const Pte v = m.value;
    auto it = std::find_if(obs_found.begin(), obs_found.end(), [&](const Witness& w) { return w.value == v; });
    if (it == obs_found.end()) obs_found.push_back({v, obs_path});
    else if (obs_path.size() < it->path.size()) it->path = obs_path;
    return;
  }
  if (m.kind == ReaderMove::Kind::Retry) {
    obs_path.push_back({cut, nullptr, {}});
    std::vector<Pte> fresh;
    obs_retries += log.size() + 1;
    observe_from(b, cut, fresh, 0);
    obs_retries -= log.size() + 1;
    obs_path.pop_back();
    return;
  }
  const Pte* w = m.slot;
  while (obs_tried.size() <= log.size() + obs_retries) obs_tried.emplace_back();
  std::vector<Pte>& tried = obs_tried[log.size() + obs_retries];
  tried.clear();
  auto branch = [&](const Clock& c, Pte v) {
    if (std::find(tried.begin(), tried.end(), v) != tried.end()) return;  // a smaller cut gave it
    tried.push_back(v);
    const std::uint32_t child = reader_child(b, node, v);
    obs_path.push_back({c, w, v});
    log.push_back(v);
    observe_from(b, c, log, child);
    log.pop_back();
    obs_path.pop_back();
  };
  branch(cut, value_at(w, cut));
  if (const auto* ws = writes_of(w))
    for (const ObsWrite& e : *ws) {
      if (cut[e.branch] >= e.pos) continue;  // in the cut already
      Clock c = cut;
      for (unsigned k = 0; k < nbranches(); ++k) c[k] = std::max(c[k], clocks[e.step][k]);
      branch(c, e.value);
    }
}

// One linearization of this execution in which the reader takes `path`:
// before each of its steps, the steps of its cut not yet placed, in the
// execution's order (a cut is closed under happens-before, so this order
// is one of the class's).
std::vector<StepRecord> Explorer::Impl::linearize(unsigned b, const std::vector<ObsStep>& path,
                                                  std::optional<Pte> returns, bool all) const {
  std::vector<StepRecord> out;
  std::vector<bool> placed(steps.size(), false);
  auto place_cut = [&](const Clock& c) {
    for (std::size_t i = 0; i < steps.size(); ++i)
      if (!placed[i] && in_cut(i, c)) out.push_back(steps[i]), placed[i] = true;
  };
  for (const ObsStep& o : path) {
    place_cut(o.cut);
    StepRecord rec;
    rec.branch = b;
    if (o.slot) {
      rec.kind = StepKind::Load;
      rec.va = va_of(o.slot);
      rec.before = rec.after = o.value;
    } else {
      rec.kind = StepKind::ReaderRetry;
      rec.va = va_of(spec(b).slot.ptr());
      rec.note = "saw a torn block; starts again";
    }
    out.push_back(std::move(rec));
  }
  if (returns && !out.empty()) out.back().note = fmt::format("returns {:#018x}", returns->val);
  if (all)
    for (std::size_t i = 0; i < steps.size(); ++i)
      if (!placed[i]) out.push_back(steps[i]);
  return out;
}

// What a reader can return depends on an execution only through its PTE
// writes: which word each writes, the value, its branch, and which writes
// of the other branches happen before it (the cuts the reader reads from
// are joins of writes' clocks). Executions that differ only in the order
// of loads, walks, TLB invalidations and lock steps — most classes when
// hardware branches race — share one observation. Only an observation
// without a finding is kept (a finding needs this execution's witness).
const std::string& Explorer::Impl::write_order_key(unsigned b) {
  // Per branch o, how many of its writes are among its first k steps:
  // wok_positions[o][k] (the steps of one branch appear in order).
  auto& written = wok_positions;
  for (unsigned o = 0; o < nbranches(); ++o) written[o].assign(1, 0);
  auto counted = [&](std::size_t i) { return steps[i].wrote && writes(fps[i].kind) && fps[i].slot; };
  for (std::size_t i = 0; i < steps.size(); ++i) {
    auto& w = written[steps[i].branch];
    w.push_back(w.back() + (counted(i) ? 1 : 0));
  }
  const unsigned nb = nbranches();
  std::size_t n = 0;  // writes counted
  for (unsigned o = 0; o < nb; ++o) n += written[o].back();
  const std::size_t per_write = sizeof(const Pte*) + sizeof(std::uint64_t) + sizeof(unsigned) +
                                (nb - 1) * sizeof(std::uint32_t);
  std::string& k = wok_key;
  k.resize(sizeof b + n * per_write);  // written in place: this runs once per reader per class
  char* out = k.data();
  auto put = [&](auto v) {
    std::memcpy(out, &v, sizeof v);
    out += sizeof v;
  };
  put(b);
  for (std::size_t i = 0; i < steps.size(); ++i) {
    if (!counted(i)) continue;
    const unsigned q = steps[i].branch;
    put(fps[i].slot);
    put(steps[i].after.val);
    put(q);
    for (unsigned o = 0; o < nb; ++o)
      if (o != q) put(written[o][clocks[i][o]]);
  }
  return k;
}

void Explorer::Impl::observe_reader(unsigned b) {
  observed_values.resize(nbranches());
  const std::string& key = write_order_key(b);
  if (auto it = observed_memo.find(key); it != observed_memo.end()) {
    observed_values[b] = it->second;
    runs[b].done = true;
    runs[b].end = BranchEnd::Completed;
    ++result.reader_memo_hits;
    return;
  }
  const std::uint64_t fails_before = fail_calls;
  observe_reader_states(b);
  if (fail_calls == fails_before && runs[b].end == BranchEnd::Completed) {
    if (observed_memo.size() >= kObservedMemoMax) observed_memo.clear();
    observed_memo.emplace(key, observed_values[b]);
  }
}

void Explorer::Impl::observe_reader_states(unsigned b) {
  if (obs_words.empty()) index_writes();
  obs_seen.clear();
  obs_found.clear();
  obs_path.clear();
  if (reader_moves.size() != nbranches()) reader_moves.assign(nbranches(), {}), gathered_nodes.assign(nbranches(), {});
  if (reader_moves[b].empty() || reader_moves[b].size() > kReaderMovesMax)
    reader_moves[b].assign(1, {}), gathered_nodes[b].assign(1, {});
  std::vector<Pte> log;
  observe_from(b, Clock{}, log, 0);
  result.reader_states += obs_nodes;
  obs_nodes = 0;
  observed_values.resize(nbranches());
  observed_values[b].clear();
  for (const Witness& w : obs_found) {
    observed_values[b].push_back(w.value);
    if (value_existed(b, w.value)) continue;
    std::vector<StepRecord> ws = linearize(b, w.path, w.value, false);
    fail("reader",
         fmt::format("{} returned {:#018x}, a value the PTE never held", spec(b).label, w.value.val),
         spec(b).va.val, &ws);
  }
  // After every other step: the block as it stays. A reader that cannot
  // return from there spins forever.
  Clock full{};
  for (unsigned q = 0; q < nbranches(); ++q) full[q] = runs[q].nsteps;
  obs_seen.clear();
  obs_found.clear();
  obs_path.clear();
  log.clear();
  observe_from(b, full, log, 0);
  BranchRun& r = runs[b];
  r.done = true;
  r.end = BranchEnd::Completed;
  if (obs_found.empty()) {
    r.end = BranchEnd::Stuck;
    std::vector<StepRecord> ws = linearize(b, obs_path, std::nullopt, true);
    fail("deadlock", fmt::format("{} never finished: the block stays torn", spec(b).label), spec(b).va.val, &ws);
  }
}

// Whether `got` is a value the reader's PTE held in this execution (its
// AF/dirty possibly gathered from the block).
bool Explorer::Impl::value_existed(unsigned b, Pte got) const {
  const Pte* slot = spec(b).slot.ptr();
  Pte initial = *slot;
  for (auto it = undo.rbegin(); it != undo.rend(); ++it)  // the word before this execution
    if (it->first == slot) initial = it->second;
  bool existed = strip_ad(got) == strip_ad(initial);
  for (std::size_t i = 0; i < steps.size() && !existed; ++i)
    if (fps[i].slot == slot && writes(fps[i].kind) && steps[i].wrote)
      existed = strip_ad(steps[i].after) == strip_ad(got);
  return existed;
}

void Explorer::Impl::check_readers() {
  for (unsigned b = 0; b < nbranches(); ++b) {
    if (spec(b).kind != ExploreBranch::Kind::Reader || !runs[b].result) continue;
    const Pte got = *runs[b].result;
    if (value_existed(b, got)) continue;
    const std::string what =
        fmt::format("{} returned {:#018x}, a value the PTE never held", spec(b).label, got.val);
    if (kept) kept->problems.push_back({spec(b).line, what});
    fail("reader", what, spec(b).va.val);
  }
}

}  // namespace contpte
