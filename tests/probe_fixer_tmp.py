import json
from tests import helpers
from tests.test_auth_cache import _signed_in


def test_probe(tmp_path, tenant, emulator, run_cli):
    config, cache = _signed_in(tmp_path, tenant, emulator)
    schedule = helpers.write_csv(tmp_path / "s.csv", helpers.schedule_rows(tenant, 1))
    good = json.loads(cache.read_text())
    print({k: list(next(iter(v.values())).keys()) if v else None for k, v in good.items()})
    cases = {}
    for section in ("AccessToken", "RefreshToken", "IdToken", "Account", "AppMetadata"):
        if not good.get(section):
            continue
        for field in next(iter(good[section].values())):
            for value in (None, 5, {"x": 1}):
                data = json.loads(json.dumps(good))
                for e in data[section].values():
                    e[field] = value
                cases[f"{section}.{field}={value!r}"] = json.dumps(data)
            data = json.loads(json.dumps(good))
            for e in data[section].values():
                del e[field]
            cases[f"{section}.{field} missing"] = json.dumps(data)
    for name, text in cases.items():
        cache.write_text(text); cache.chmod(0o600)
        r = run_cli("run", schedule, "--config", config, "--dry-run")
        r2 = run_cli("run", schedule, "--config", config)
        for rr in (r2,):
            if rr.code not in (0, 3) or "internal" in rr.err or "authority_host" in rr.err:
                print("BAD", name, rr.code, rr.err[-300:].replace("\n", " "))
