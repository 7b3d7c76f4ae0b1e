// scenario/machine_spec.cpp — see machine_spec.h.

#include "scenario/machine_spec.h"

#include <fmt/format.h>

namespace contpte {

// The core a run executes on, in one place: the header's `tlb` (a preset
// or a JSON file) with the header's CPU-feature overrides applied —
// `hafdbs on|off`, and `contpte bbml2`, the shorthand for Linux 6.17's
// contpte on a core whose FEAT_BBML2_NOABORT is turned on for the run.
TlbConfig run_core(const Header& h) {
  TlbConfig c = resolve_tlb_config(h.tlb);
  if (h.hafdbs) c.hafdbs = *h.hafdbs;
  if (*variant_from_name(h.variant) == Variant::Bbml2) c.bbml2_noabort = true;
  return c;
}

// What the engine may ask: the kernel's behaviour and the core's features.
Features features_of(const Header& h, const TlbConfig& core) {
  Features f;
  f.variant = *variant_from_name(h.variant);
  f.bbml2_noabort = core.bbml2_noabort;
  f.hafdbs = core.hafdbs;
  return f;
}

// The engine seam: the machine's one choice of engine, made at run time —
// the built-in engine in the header's variant, or (--kernel) the code of a
// Linux tree built for this granule and configuration.
Features machine_features(const Scenario& sc, const TlbConfig& core, const RunOptions& opts) {
  Features f = features_of(sc.header, core);
  if (opts.test_features) opts.test_features(f);  // tests only
  if (!opts.kernel_engine) return f;
  if (f.variant != Variant::Upstream && f.variant != Variant::Off)
    throw ScenarioError(sc.file, fmt::format("`contpte {}` is a variant of contpte's own engine; with --kernel "
                                             "only `contpte upstream` (CONFIG_ARM64_CONTPTE=y) and `contpte off` "
                                             "(=n) name a build of the tree",
                                             sc.header.variant));
  f.external = opts.kernel_engine(sc.header.geometry(), f.variant == Variant::Upstream);
  return f;
}

// The sysfs THP settings a scenario header states, by folio order.
ThpSettings thp_settings(const Header& h) {
  ThpSettings t;
  auto mode = [](ThpPolicy p) {
    switch (p) {
      case ThpPolicy::Always: return ThpMode::Always;
      case ThpPolicy::Inherit: return ThpMode::Inherit;
      case ThpPolicy::Madvise: return ThpMode::Madvise;
      case ThpPolicy::Never: return ThpMode::Never;
    }
    return ThpMode::Never;
  };
  const Geometry& g = h.geometry();
  for (const auto& [bytes, p] : h.thp)
    t.per_order[static_cast<unsigned>(__builtin_ctzll(bytes) - g.page_shift)] = mode(p);
  t.top = mode(h.thp_top);
  return t;
}

// The machine a scenario's header describes.
MachineSpec machine_spec(const Scenario& sc, const RunOptions& opts) {
  const Header& h = sc.header;
  MachineSpec m;
  m.granule = h.granule;
  m.memory = h.memory;
  m.fragment = h.fragment;
  m.seed = h.seed;
  m.core = run_core(h);
  m.features = machine_features(sc, m.core, opts);
  m.thp = thp_settings(h);
  m.insns_per_access = h.insns_per_access;
  m.check = opts.check;
  return m;
}

}  // namespace contpte
