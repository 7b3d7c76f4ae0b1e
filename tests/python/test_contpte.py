#!/usr/bin/env python3
"""The Python module from a build tree (PYTHONPATH=BUILD/python): run,
configs, presets, read_results, and InputError with FILE:LINE:COL.
Usage: test_contpte.py CONTPTE_BINARY SOURCE_DIR"""
import os
import pathlib
import subprocess
import sys
import tempfile
import unittest

import contpte

BIN = sys.argv[1] if len(sys.argv) > 1 else "contpte"
SRC = pathlib.Path(sys.argv[2] if len(sys.argv) > 2 else ".")
FOLD = SRC / "examples" / "02-fold-on-last-pte.cpt"


class Module(unittest.TestCase):
    def test_run_a_path_gives_the_reports_runs(self):
        for scenario in (FOLD, str(FOLD)):  # os.PathLike, and a str naming a file
            runs = contpte.run(scenario)
            self.assertEqual(len(runs), 1)
            r = runs[0]
            self.assertEqual(r["scenario"], str(FOLD))
            self.assertEqual(r["exit_status"], 0)
            self.assertGreater(r["stats"]["folds"], 0)
            self.assertEqual(r["expects"]["failed"], 0)

    def test_same_as_the_cli_json_report(self):
        with tempfile.TemporaryDirectory() as d:
            out = os.path.join(d, "r.json")
            subprocess.run([BIN, "run", str(FOLD), "--config", "base-4k", "--json", out, "-q"], check=False)
            import json
            cli = json.load(open(out))["runs"]
        self.assertEqual(contpte.run(FOLD, config="base-4k"), cli)

    def test_text_config_core_and_seed(self):
        text = "alloc F order=4\nset_ptes 0x40000000 F nr=16 prot=rw\nexpect cont 0x40000000 64K\n"
        r = contpte.run(text)[0]
        self.assertEqual(r["scenario"], "<string>")
        self.assertEqual(r["exit_status"], 0)
        off = contpte.run(text, config="base-4k")[0]
        self.assertEqual(off["config"]["name"], "base-4k")
        self.assertEqual(off["config"]["contpte"], "off")
        self.assertEqual(off["exit_status"], 1)  # the expect cont fails with contpte off
        r = contpte.run(text, core="neoverse-v1", seed=7)[0]
        self.assertEqual(r["config"]["tlb"], "neoverse-v1")

    def test_input_error_is_a_value_error_with_file_line_col(self):
        with self.assertRaises(contpte.InputError) as e:
            contpte.run("granule 4K\ncontpte upstrem\n")
        self.assertIsInstance(e.exception, ValueError)
        self.assertEqual(str(e.exception), "<string>:2:9: error: unknown contpte variant 'upstrem'; "
                         "expected one of: upstream, nofold, off, naive, bbml2")
        with self.assertRaises(ValueError):
            contpte.run(FOLD, config="no-such-config")
        with self.assertRaises(ValueError):
            contpte.run(FOLD, core="no-such-core")
        with tempfile.TemporaryDirectory() as d:
            bad = pathlib.Path(d) / "bad.cpt"
            bad.write_text("alloc F order=4\nset_ptes 0x40000000 G nr=16 prot=rw\n")
            with self.assertRaises(contpte.InputError) as e:
                contpte.run(bad)
            self.assertTrue(str(e.exception).startswith(f"{bad}:2:"), str(e.exception))

    def test_configs_and_presets(self):
        names = [c["name"] for c in contpte.configs()]
        self.assertIn("contpte-64k", names)
        self.assertIn("granule 16K", next(c for c in contpte.configs() if c["name"] == "gran-16k")["header"])
        self.assertIn("neoverse-n1", [p["name"] for p in contpte.presets()])
        self.assertTrue(contpte.__version__)

    def test_read_results_of_a_sweep(self):
        with tempfile.TemporaryDirectory() as d:
            out = os.path.join(d, "s.jsonl")
            subprocess.run([BIN, "sweep", "--inputs", str(FOLD), "--configs", "contpte-64k", "base-4k",
                            "--seeds", "2", "-o", out], check=False, stdout=subprocess.DEVNULL)
            recs = contpte.read_results(out)
            self.assertEqual(len(recs), 4)
            self.assertEqual({(r["config"], r["seed"]) for r in recs},
                             {("contpte-64k", 1), ("contpte-64k", 2), ("base-4k", 1), ("base-4k", 2)})
            for r in recs:
                self.assertIn("folds", r)
                self.assertNotIsInstance(r["folds"], dict)
            try:
                import pandas  # optional: only when installed
                self.assertEqual(len(pandas.DataFrame(recs)), 4)
            except ImportError:
                pass
            with open(out, "a") as f:
                f.write("{\"not\": \"a run\"}\n")
            with self.assertRaises(contpte.InputError) as e:
                contpte.read_results(out)
            self.assertTrue(str(e.exception).startswith(f"{out}:6: error:"), str(e.exception))


if __name__ == "__main__":
    unittest.main(argv=sys.argv[:1], verbosity=2)
