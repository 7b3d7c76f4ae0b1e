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
  reader_moves[b].emplace_back();  // may move the vector: index again below
  reader_moves[b][node].next.emplace_back(v, child);
  return child;
}

const std::vector<Explorer::Impl::ObsWrite>* Explorer::Impl::writes_of(const Pte* w) const {
  for (const auto& [p, v] : obs_writes)
    if (p == w) return &v;
  return nullptr;
}

Pte Explorer::Impl::initial_of(const Pte* w) const {
  for (const auto& [p, v] : obs_initial)
    if (p == w) return v;
  return *w;  // never written in this execution
}

Pte Explorer::Impl::value_at(const Pte* w, const Clock& c) const {
  Pte v = initial_of(w);
  if (const auto* ws = writes_of(w))
    for (const ObsWrite& e : *ws) {
      if (c[e.branch] < e.pos) break;
      v = e.value;
    }
  return v;
}

void Explorer::Impl::index_writes() {
  obs_writes.clear();
  obs_initial.clear();
  for (std::size_t i = 0; i < steps.size(); ++i) {
    if (!steps[i].wrote || !writes(fps[i].kind) || !fps[i].slot) continue;
    const Pte* w = fps[i].slot;
    auto it = std::find_if(obs_writes.begin(), obs_writes.end(), [&](const auto& e) { return e.first == w; });
    if (it == obs_writes.end()) {
      obs_writes.push_back({w, {}});
      obs_initial.push_back({w, steps[i].before});
      it = obs_writes.end() - 1;
    }
    const unsigned q = steps[i].branch;
    it->second.push_back({i, q, clocks[i][q], steps[i].after});
  }
}

// An attempt's state: the cut and what the reader has gathered. A
// lockless reader (ptep_get_lockless) keeps its first load whole and,
// of the block's words it then loads, compares them without AF and dirty
// and ORs their AF and dirty into its result: two attempts that agree on
// those continue alike (without this, the 2^16 orders in which a reader
// can see a block's AF/dirty being rewritten word by word are all apart).
std::string Explorer::Impl::obs_key(const Clock& c, const std::vector<Pte>& log) const {
  std::string k(reinterpret_cast<const char*>(c.data()), nbranches() * sizeof(c[0]));
  auto put = [&](std::uint64_t v) { k.append(reinterpret_cast<const char*>(&v), sizeof v); };
  bool young = false, dirty = false;
  for (std::size_t i = 0; i < log.size(); ++i) {
    if (i == 0) {
      put(log[i].val);
      continue;
    }
    put(strip_ad(log[i]).val);
    young |= pte_young(log[i]);
    dirty |= pte_dirty(log[i]);
  }
  put(log.size() | (std::uint64_t{young} << 62) | (std::uint64_t{dirty} << 63));
  return k;
}

// The reader's attempt from (cut, log): runs it and branches on what its
// next load may return.
void Explorer::Impl::observe_from(unsigned b, const Clock& cut, std::vector<Pte>& log, std::uint32_t node) {
  if (!obs_seen.insert(obs_key(cut, log)).second) return;
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
    observe_from(b, cut, fresh, 0);
    obs_path.pop_back();
    return;
  }
  const Pte* w = m.slot;
  std::vector<Pte> tried;
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

void Explorer::Impl::observe_reader(unsigned b) {
  if (obs_writes.empty() && obs_initial.empty()) index_writes();
  obs_seen.clear();
  obs_found.clear();
  obs_path.clear();
  if (reader_moves.size() != nbranches()) reader_moves.assign(nbranches(), {});
  if (reader_moves[b].empty() || reader_moves[b].size() > kReaderMovesMax) reader_moves[b].assign(1, {});
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
