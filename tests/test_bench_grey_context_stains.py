"""benchmarks/grey_context_stains.py: global_phase.py with grey context stains, restored afterwards."""
import torch


def test_runs_global_phase_with_grey_stains_and_restores_them(monkeypatch, load_benchmark):
    import glance_lite.context_train as ct
    mod = load_benchmark("grey_context_stains")
    plain = ct.context_stains
    seen = {}

    def fake_main(argv):
        black = torch.zeros(16, 3, 32, 32)
        # as context_step calls it for a profile with colour stains: grey=False, still forced grey
        out = ct.context_stains(black, 2, torch.Generator().manual_seed(0), 3, 6, grey=False)
        seen["grey"] = out.abs().sum() > 0 and torch.equal(out[:, 0], out[:, 2])
        seen["argv"] = argv
        return 0

    monkeypatch.setattr(mod.global_phase, "main", fake_main)
    assert mod.main(["a", "b"]) == 0
    assert seen == {"grey": True, "argv": ["a", "b"]}
    assert ct.context_stains is plain  # the package's function is back
