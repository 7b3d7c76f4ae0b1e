// scenario/parse_statements.cpp — the .cpt parser's operands (numbers,
// sizes, addresses, folio pages) and statements; see parser.h.

#include <fmt/format.h>

#include <algorithm>
#include <tuple>

#include "scenario/parser.h"

namespace contpte::cpt {

std::uint64_t Parser::number(const LineCursor& c, const Token& t, std::string_view what) const {
  std::uint64_t v = 0;
  switch (scan_u64(t.text, v)) {
    case Scan::Ok: return v;
    case Scan::Bad: c.fail(t, fmt::format("bad {} '{}'; expected a decimal or 0x hex number", what, t.text));
    case Scan::Overflow: break;
  }
  c.fail(t, fmt::format("{} '{}' does not fit in 64 bits", what, t.text));
}

std::uint64_t Parser::size(const LineCursor& c, const Token& t, std::string_view what) const {
  std::uint64_t v = 0;
  switch (scan_size(t.text, v)) {
    case Scan::Ok: return v;
    case Scan::Bad:
      c.fail(t, fmt::format("bad {} '{}'; expected a number with an optional K, M, G or T suffix", what, t.text));
    case Scan::Overflow: break;
  }
  c.fail(t, fmt::format("{} '{}' does not fit in 64 bits", what, t.text));
}

std::uint64_t Parser::positive(const LineCursor& c, const Token& t, std::string_view what) const {
  const std::uint64_t v = number(c, t, what);
  if (v == 0) c.fail(t, fmt::format("{} must be at least 1, found {}", what, t.text));
  return v;
}

std::uint64_t Parser::length(const LineCursor& c, const Token& t, std::string_view what) const {
  const std::uint64_t v = size(c, t, what);
  if (v == 0) c.fail(t, fmt::format("{} must not be zero", what));
  if (v % page_size() != 0)
    c.fail(t, fmt::format("{} {} is not a multiple of the {} page size", what, t.text, geo_->name));
  return v;
}

void Parser::check_va(const LineCursor& c, const Token& t, std::uint64_t va) const {
  if (va % page_size() != 0)
    c.fail(t, fmt::format("address {} is not aligned to the {} page size", hex(va), geo_->name));
  if (va == 0 || va >= kUserVaEnd)
    c.fail(t, fmt::format("address {} is out of range; expected a user address from {} to {}", hex(va),
                          hex(page_size()), hex(kUserVaEnd - page_size())));
}

AddrExpr Parser::addr_expr(LineCursor& c) {
  const Token t = c.take("an address, NAME or NAME+OFFSET");
  AddrExpr a;
  a.loc = c.loc(t);
  if (is_digit(t.text[0])) {
    a.offset = number(c, t, "address");
    check_va(c, t, a.offset);
    return a;
  }
  const std::size_t plus = t.text.find('+');
  const Token name = sub_token(t, 0, plus);
  if (!is_name(name.text))
    c.fail(t, fmt::format("bad address '{}'; expected a number, NAME or NAME+OFFSET", t.text));
  a.mapping = std::string(name.text);
  if (plus != std::string_view::npos) {
    const Token off = sub_token(t, plus + 1);
    a.offset = size(c, off, "offset");
    if (a.offset % page_size() != 0)
      c.fail(off, fmt::format("offset {} is not aligned to the {} page size", hex(a.offset), geo_->name));
  }
  return a;
}

std::string Parser::describe(const AddrExpr& a) {
  if (!a.mapping) return hex(a.offset);
  return a.offset ? fmt::format("{}+{}", *a.mapping, hex(a.offset)) : *a.mapping;
}

void Parser::check_range(const AddrExpr& a, std::uint64_t len, const SourceLoc& at) {
  if (a.offset > kUserVaEnd || len > kUserVaEnd - a.offset)
    throw ScenarioError(at, fmt::format("range {} + {} ends past the 48-bit user address space ({})",
                                        describe(a), format_size(len), hex(kUserVaEnd)));
}

std::uint64_t Parser::optional_length(LineCursor& c, const AddrExpr& a) const {
  const std::optional<Token> t = c.take_optional();
  const std::uint64_t len = t ? length(c, *t) : page_size();
  check_range(a, len, t ? c.loc(*t) : a.loc);
  return len;
}

VirtAddr Parser::pte_address(LineCursor& c, const Token& kw) const {
  const Token t = c.take("an address");
  if (!is_digit(t.text[0]))
    c.fail(t, fmt::format("{} takes a numeric address, found '{}'; PTE-level statements act outside mappings",
                          kw.text, t.text));
  const std::uint64_t va = number(c, t, "address");
  check_va(c, t, va);
  return VirtAddr{va};
}

unsigned Parser::pte_count(const LineCursor& c, const Token& t, VirtAddr addr) const {
  const std::uint64_t nr = positive(c, t, "nr");
  const std::uint64_t slot = (addr.val >> geo_->page_shift) & (geo_->ptrs_per_table() - 1);
  if (nr > geo_->ptrs_per_table() - slot)
    c.fail(t, fmt::format("nr={} from {} crosses the page-table page boundary at {}; a PTE-level range must "
                          "stay inside one page table ({} with the {} granule)",
                          nr, hex(addr.val), hex((addr.val | (geo_->pmd_size() - 1)) + 1),
                          format_size(geo_->pmd_size()), geo_->name));
  return static_cast<unsigned>(nr);
}

Prot Parser::prot(const LineCursor& c, const Token& t) const {
  const auto p = prot_from_name(t.text);
  if (!p) {
    std::vector<std::string_view> names;
    for (const auto& info : kProts) names.push_back(info.name);
    c.fail(t, fmt::format("unknown protection '{}'; expected one of: {}", t.text, join(names)));
  }
  return *p;
}

void Parser::check_name(const LineCursor& c, const Token& t, std::string_view what) const {
  if (!is_name(t.text))
    c.fail(t, fmt::format("bad {} '{}'; expected a letter or '_' followed by letters, digits or '_'", what,
                          t.text));
}

std::pair<FolioRef, std::uint64_t> Parser::folio_ref(const LineCursor& c, const Token& t) const {
  const std::size_t plus = t.text.find('+');
  const Token name = sub_token(t, 0, plus);
  if (!is_name(name.text))
    c.fail(t, fmt::format("bad folio page '{}'; expected F or F+I, F a folio from 'alloc'", t.text));
  const auto it = folios_.find(name.text);
  if (it == folios_.end())
    c.fail(name, fmt::format("unknown folio '{}'; expected a folio allocated by an earlier 'alloc'", name.text));
  const std::uint64_t pages = std::uint64_t{1} << it->second.order;
  FolioRef ref{std::string(name.text), 0, c.loc(t)};
  if (plus != std::string_view::npos) {
    const Token index = sub_token(t, plus + 1);
    ref.index = number(c, index, "page index");
    if (ref.index >= pages)
      c.fail(index, fmt::format("page index {} is past the end of folio {} (order {}: pages 0 to {})", ref.index,
                                ref.folio, it->second.order, pages - 1));
  }
  return {std::move(ref), pages};
}

bool Parser::bit_value(const LineCursor& c, const Token& t, std::string_view key) const {
  if (t.text != "0" && t.text != "1")
    c.fail(t, fmt::format("bad value '{}' for {}; expected 0 or 1", t.text, key));
  return t.text == "1";
}

Alloc Parser::parse_alloc(LineCursor& c, const Token&) {
  const Token name = c.take("a folio name");
  check_name(c, name, "folio name");
  if (const auto it = folios_.find(name.text); it != folios_.end())
    c.fail(name, fmt::format("folio '{}' is already allocated (line {})", name.text, it->second.line));
  Options o(c, "alloc", {"order"}, {});
  const Token ot = o.require("order", "order=N");
  // The buddy's largest block is a PMD: a folio is at most PMD-sized.
  const unsigned max_order = geo_->pmd_shift() - geo_->page_shift;
  const std::uint64_t order = number(c, ot, "order");
  if (order > max_order)
    c.fail(ot, fmt::format("order {} is too large; expected at most {} (a {} folio with the {} granule)", ot.text,
                           max_order, format_size(geo_->pmd_size()), geo_->name));
  const std::uint64_t bytes = page_size() << order;
  if (bytes > out_.header.memory - allocated_bytes_)
    c.fail(ot, fmt::format("folio {} ({}) does not fit: earlier allocs take {} of the {} memory", name.text,
                           format_size(bytes), format_size(allocated_bytes_), format_size(out_.header.memory)));
  allocated_bytes_ += bytes;
  folios_.emplace(std::string(name.text), FolioInfo{static_cast<unsigned>(order), c.line_number()});
  return Alloc{std::string(name.text), static_cast<unsigned>(order)};
}

SetPtes Parser::parse_set_ptes(LineCursor& c, const Token& kw) {
  SetPtes s;
  s.addr = pte_address(c, kw);
  std::uint64_t pages = 0;
  std::tie(s.folio, pages) = folio_ref(c, c.take("a folio page F or F+I"));
  Options o(c, "set_ptes", {"nr", "prot"}, {"young", "dirty"});
  const Token nr = o.require("nr", "nr=N");
  const Token p = o.require("prot", "prot=P");
  s.nr = pte_count(c, nr, s.addr);
  // set_ptes maps consecutive pages of one folio (core-mm's precondition).
  if (s.folio.index + s.nr > pages)
    c.fail(nr, fmt::format("nr={} from {}+{} runs past the end of folio {} ({} pages)", s.nr, s.folio.folio,
                           s.folio.index, s.folio.folio, pages));
  s.prot = prot(c, p);
  s.young = o.flag("young");
  s.dirty = o.flag("dirty");
  return s;
}

PteOp Parser::parse_pte_op(LineCursor& c, const Token& kw) {
  PteOp op;
  op.kind = *lookup(kPteOps, kw.text);
  op.addr = pte_address(c, kw);
  c.finish(fmt::format("{} ADDR", kw.text));
  return op;
}

PteBatch Parser::parse_pte_batch(LineCursor& c, const Token& kw) {
  static constexpr std::array<std::string_view, 1> kNr{"nr"};
  static constexpr std::array<std::string_view, 1> kFull{"full"};
  static constexpr std::array<std::string_view, 2> kYoungDirty{"young", "dirty"};
  PteBatch b;
  b.kind = *lookup(kPteBatchOps, kw.text);
  b.addr = pte_address(c, kw);
  std::span<const std::string_view> flags;
  switch (b.kind) {
    case PteBatchKind::GetAndClearFullPtes:
    case PteBatchKind::ClearFullPtes: flags = kFull; break;
    case PteBatchKind::ClearYoungDirtyPtes: flags = kYoungDirty; break;
    case PteBatchKind::WrprotectPtes: break;
  }
  Options o(c, kw.text, kNr, flags);
  b.nr = pte_count(c, o.require("nr", "nr=N"), b.addr);
  b.full = o.flag("full");
  b.young = o.flag("young");
  b.dirty = o.flag("dirty");
  return b;
}

ModifyProt Parser::parse_modify_prot(LineCursor& c, const Token& kw) {
  ModifyProt m;
  m.addr = pte_address(c, kw);
  Options o(c, "modify_prot", {"nr", "prot"}, {});
  const Token nr = o.require("nr", "nr=N");
  const Token p = o.require("prot", "prot=P");
  m.nr = pte_count(c, nr, m.addr);
  m.prot = prot(c, p);
  return m;
}

SetAccessFlags Parser::parse_set_access_flags(LineCursor& c, const Token& kw) {
  SetAccessFlags s;
  s.addr = pte_address(c, kw);
  Options o(c, "ptep_set_access_flags", {"prot"}, {"young", "dirty"});
  s.prot = prot(c, o.require("prot", "prot=P"));
  s.young = o.flag("young");
  s.dirty = o.flag("dirty");
  return s;
}

RawSet Parser::parse_raw_set(LineCursor& c, const Token& kw) {
  RawSet r;
  r.addr = pte_address(c, kw);
  Options o(c, "raw_set", {"pfn", "prot"}, {"cont", "young", "dirty"});
  const Token pfn = o.require("pfn", "pfn=F+I");
  const Token p = o.require("prot", "prot=P");
  r.pfn = folio_ref(c, pfn).first;
  r.prot = prot(c, p);
  r.cont = o.flag("cont");
  r.young = o.flag("young");
  r.dirty = o.flag("dirty");
  return r;
}

Dump Parser::parse_dump(LineCursor& c, const Token&) {
  Dump d;
  d.addr = addr_expr(c);
  d.len = optional_length(c, d.addr);
  c.finish("dump ADDR [LEN]");
  return d;
}

std::pair<std::string, SourceLoc> Parser::mapping_name(LineCursor& c) {
  const Token name = c.take("a mapping name");
  check_name(c, name, "mapping name");
  return {std::string(name.text), c.loc(name)};
}

Mmap Parser::parse_mmap(LineCursor& c, const Token&) {
  Mmap m;
  std::tie(m.name, m.name_loc) = mapping_name(c);
  // Any byte count, as mmap(2) takes: the mapping (and a file's page
  // cache) covers it rounded up to whole pages of the granule.
  const Token sz = c.take("a size");
  m.size = size(c, sz, "size");
  if (m.size == 0) c.fail(sz, "size must not be zero");
  Options o(c, "mmap", {"prot", "file", "addr", "align", "offset", "filesize"}, {"private", "shared", "anon"});
  o.exclusive("private", "shared");
  o.exclusive("anon", "file");
  if (auto p = o.value("prot")) m.prot = prot(c, *p);
  m.shared = o.flag("shared");
  if (auto f = o.value("file")) m.file = std::string(f->text);
  for (const char* key : {"offset", "filesize"})
    if (auto t = o.value(key); t && !m.file) c.fail(*t, fmt::format("{}= needs file=: only a file has an offset and a size", key));
  if (auto t = o.value("offset")) {
    // mmap(2) takes a file offset in whole pages (EINVAL otherwise).
    m.offset = size(c, *t, "file offset");
    if (m.offset % page_size() != 0)
      c.fail(*t, fmt::format("offset={} is not a multiple of the {} page size", t->text, geo_->name));
    if (m.offset > kUserVaEnd)
      c.fail(*t, fmt::format("offset={} is past the largest file this model takes ({})", t->text, hex(kUserVaEnd)));
  }
  if (auto t = o.value("filesize")) m.file_size = size(c, *t, "file size");
  if (auto a = o.value("align")) {
    m.align = size(c, *a, "alignment");
    if (!std::has_single_bit(*m.align) || *m.align < page_size())
      c.fail(*a, fmt::format("align={} is not a power of two of at least the {} page size", a->text,
                             geo_->name));
  }
  if (auto a = o.value("addr")) {
    const std::uint64_t va = number(c, *a, "address");
    check_va(c, *a, va);
    if (m.size > kUserVaEnd - va)
      c.fail(*a, fmt::format("mapping {} + {} ends past the 48-bit user address space ({})", hex(va),
                             format_size(m.size), hex(kUserVaEnd)));
    if (m.align && va % *m.align != 0)
      c.fail(*a, fmt::format("addr={} is not aligned to align={}", a->text, format_size(*m.align)));
    m.addr = VirtAddr{va};
  }
  return m;
}

std::pair<AddrExpr, std::uint64_t> Parser::mm_range(LineCursor& c) {
  AddrExpr a = addr_expr(c);
  const Token t = c.take("a length");
  const std::uint64_t len = length(c, t);
  check_range(a, len, c.loc(t));
  return {std::move(a), len};
}

Munmap Parser::parse_munmap(LineCursor& c, const Token&) {
  Munmap m;
  std::tie(m.addr, m.len) = mm_range(c);
  c.finish("munmap NAME[+OFF] LEN");
  return m;
}

Brk Parser::parse_brk(LineCursor& c, const Token&) {
  Brk b;
  std::tie(b.name, b.name_loc) = mapping_name(c);
  b.size = length(c, c.take("the heap's new size"), "size");
  c.finish("brk NAME SIZE");
  return b;
}

Mprotect Parser::parse_mprotect(LineCursor& c, const Token&) {
  Mprotect m;
  std::tie(m.addr, m.len) = mm_range(c);
  m.prot = prot(c, c.take("a protection"));
  c.finish("mprotect NAME[+OFF] LEN PROT");
  return m;
}

Madvise Parser::parse_madvise(LineCursor& c, const Token&) {
  Madvise m;
  std::tie(m.addr, m.len) = mm_range(c);
  const Token t = c.take("an advice");
  const auto advice = lookup(kAdvices, t.text);
  if (!advice) c.fail(t, fmt::format("unknown advice '{}'; expected one of: {}", t.text, names_of(kAdvices)));
  m.advice = *advice;
  c.finish("madvise NAME[+OFF] LEN ADVICE");
  return m;
}

Fork Parser::parse_fork(LineCursor& c, const Token&) {
  c.finish("fork");
  processes_.emplace_back();
  return {};
}

unsigned Parser::process_id(const LineCursor& c, const Token& t) const {
  const std::uint64_t id = number(c, t, "process id");
  if (id >= processes_.size())
    c.fail(t, fmt::format("no process {}; processes so far are 0 to {} ('fork' creates the next)", t.text,
                          processes_.size() - 1));
  if (const auto& exited = processes_[id].exit_line)
    c.fail(t, fmt::format("process {} exited at line {}", id, *exited));
  return static_cast<unsigned>(id);
}

Process Parser::parse_process(LineCursor& c, const Token&) {
  const unsigned id = process_id(c, c.take("a process id"));
  c.finish("process ID");
  current_ = id;
  return Process{id};
}

Exit Parser::parse_exit(LineCursor& c, const Token&) {
  const Token t = c.take("a process id");
  const unsigned id = process_id(c, t);
  if (id == current_)
    c.fail(t, fmt::format("cannot exit process {}: it is the current process; switch with 'process ID' first", id));
  c.finish("exit ID");
  processes_[id].exit_line = c.line_number();
  return Exit{id};
}

Reclaim Parser::parse_reclaim(LineCursor& c, const Token&) {
  Reclaim r;
  Options o(c, "reclaim", {"pages"}, {});
  if (auto p = o.value("pages")) r.pages = positive(c, *p, "pages");
  return r;
}

Access Parser::parse_access(LineCursor& c, const Token& kw) {
  Access a;
  a.kind = *lookup(kAccessKinds, kw.text);
  a.addr = addr_expr(c);
  const Token lt = c.take("a length");
  a.len = size(c, lt, "length");
  if (a.len == 0) c.fail(lt, "length must not be zero");
  check_range(a.addr, a.len, c.loc(lt));
  Options o(c, kw.text, {"stride", "count", "pattern"}, {});
  a.stride = page_size();
  const std::optional<Token> st = o.value("stride");
  if (st) {
    a.stride = size(c, *st, "stride");
    if (a.stride == 0) c.fail(*st, "stride must not be zero");
  }
  if (a.stride > a.len)
    c.fail(st ? *st : lt, fmt::format("length {} is shorter than the stride {}: no access would be made",
                                      format_size(a.len), format_size(a.stride)));
  a.count = a.len / a.stride;
  if (auto n = o.value("count")) a.count = positive(c, *n, "count");
  if (auto p = o.value("pattern")) {
    const auto pattern = lookup(kPatterns, p->text);
    if (!pattern) c.fail(*p, fmt::format("unknown pattern '{}'; expected one of: {}", p->text, names_of(kPatterns)));
    a.pattern = *pattern;
  }
  return a;
}

DevAccess Parser::parse_dev(LineCursor& c, const Token&) {
  DevAccess d;
  const Token k = c.take("read or write");
  if (k.text != "read" && k.text != "write")
    c.fail(k, fmt::format("unknown device access '{}'; expected read or write", k.text));
  d.kind = *lookup(kAccessKinds, k.text);
  d.addr = addr_expr(c);
  check_range(d.addr, page_size(), d.addr.loc);
  c.finish("dev read|write ADDR");
  return d;
}

Op Parser::parse_expect(LineCursor& c, const Token&) {
  const Token form = c.take(fmt::format("one of: {}", join(kExpectForms)));
  const std::string_view f = form.text;
  if (f == "cont" || f == "nocont") {
    ExpectCont e;
    e.cont = f == "cont";
    e.addr = addr_expr(c);
    e.len = optional_length(c, e.addr);
    c.finish(fmt::format("expect {} ADDR [LEN]", f));
    return e;
  }
  if (f == "pte" || f == "raw") return expect_pte(c, f == "raw");
  if (f == "stat") return expect_stat(c);
  if (f == "violations") {
    ExpectViolations e{number(c, c.take("a count"), "count")};
    c.finish("expect violations N");
    return e;
  }
  if (f == "violation") {
    const Token rule = c.take("a rule");
    if (std::find(kRuleNames.begin(), kRuleNames.end(), rule.text) == kRuleNames.end())
      c.fail(rule, fmt::format("unknown rule '{}'; expected one of: {}", rule.text, join(kRuleNames)));
    ExpectViolation e{std::string(rule.text), std::nullopt};
    // Claiming zero findings says nothing; `expect violations 0` asserts none.
    if (auto n = c.take_optional()) e.count = positive(c, *n, "count");
    c.finish("expect violation RULE [N]");
    return e;
  }
  c.fail(form, fmt::format("unknown expectation '{}'; expected one of: {}", f, join(kExpectForms)));
}

ExpectPte Parser::expect_pte(LineCursor& c, bool raw) {
  ExpectPte e;
  e.raw = raw;
  e.addr = addr_expr(c);
  check_range(e.addr, page_size(), e.addr.loc);
  const std::string_view stmt = raw ? "expect raw" : "expect pte";
  Options o(c, stmt, {"present", "pfn", "write", "dirty", "young", "cont", "huge"}, {});
  if (o.empty())
    c.fail_at_end(
        fmt::format("{} needs at least one of: present=, pfn=, write=, dirty=, young=, cont=, huge=", stmt));
  PteExpectation& w = e.want;
  for (auto [key, field] : {std::pair{"present", &PteExpectation::present}, std::pair{"write", &PteExpectation::write},
                            std::pair{"dirty", &PteExpectation::dirty}, std::pair{"young", &PteExpectation::young},
                            std::pair{"cont", &PteExpectation::cont}, std::pair{"huge", &PteExpectation::huge}})
    if (auto v = o.value(key)) w.*field = bit_value(c, *v, key);
  if (auto v = o.value("pfn")) {
    if (is_digit(v->text[0])) {
      const std::uint64_t pfn = number(c, *v, "pfn");
      // Output addresses are 48-bit (no FEAT_LPA): a larger PFN can never match.
      if (pfn >= (kUserVaEnd >> geo_->page_shift))
        c.fail(*v, fmt::format("pfn {} is beyond the 48-bit physical address space", v->text));
      w.pfn = Pfn{pfn};
    } else {
      w.pfn = folio_ref(c, *v).first;
    }
  }
  return e;
}

ExpectStat Parser::expect_stat(LineCursor& c) {
  ExpectStat e;
  const Token name = c.take("a stat name");
  if (!is_stat_name(name.text))
    c.fail(name, fmt::format("bad stat name '{}'; expected a key of \"stats\" in the report", name.text));
  e.name = std::string(name.text);
  e.name_loc = c.loc(name);
  const Token op = c.take("a comparison");
  const auto cmp = lookup(kCmpOps, op.text);
  if (!cmp) c.fail(op, fmt::format("unknown comparison '{}'; expected one of: {}", op.text, names_of(kCmpOps)));
  e.op = *cmp;
  const Token v = c.take("a value");
  // Integers may be written as sizes or in hex (rss_bytes >= 64M).
  std::uint64_t n = 0;
  if (scan_size(v.text, n) == Scan::Ok)
    e.value = static_cast<double>(n);
  else if (auto d = scan_double(v.text))
    e.value = *d;
  else
    c.fail(v, fmt::format("bad value '{}'; expected a decimal number, 0x hex or a size", v.text));
  c.finish("expect stat NAME OP VALUE");
  return e;
}

}  // namespace contpte::cpt
