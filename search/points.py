"""RD points of every trial, per epoch, in the experiment's storage; BD-rate vs off during the run.

Layout: ``STORAGE/NAME/points/seed=<s>/epoch=<e>/<configuration>.json`` holds one
configuration's validation curve at that epoch: ``{"configuration", "seed", "epoch",
"lambdas", "rate" (val_bpp per λ), "distortion" (val_psnr, or val_ms_ssim_db for MS-SSIM
spaces), "distortion_key"}``. Each file is written once, atomically, by the trial that owns
it; a trial reads the off configuration's file of the same seed and epoch, if it exists
yet, and reports ``bd_rate_vs_off`` (percent, NaN when undefined: fewer than 4 λs,
non-monotone curve, no overlap). Storage may be a local path or a URI (pyarrow.fs),
so this works on clusters with shared or object storage.
"""
from __future__ import annotations

import json
import math
import urllib.parse
from dataclasses import dataclass

from analysis.bd import bd_rate_checked
from spaces import OFF_ID
from trainable.curve import lambda_key

from .storage import read_bytes, write_bytes

POINTS_DIR = "points"


def distortion_key(metric: str) -> str:
    return "val_ms_ssim_db" if metric == "ms-ssim" else "val_psnr"


def file_name(configuration: str) -> str:
    return urllib.parse.quote(configuration, safe="=,.-_") + ".json"


@dataclass(frozen=True)
class OffComparison:
    """Called by the Tune adapter after each epoch: writes the trial's points, returns extra metrics."""

    root: str                       # STORAGE/NAME (path or URI)

    def path(self, seed: int, epoch: int, configuration: str) -> str:
        return f"{POINTS_DIR}/seed={seed}/epoch={epoch}/{file_name(configuration)}"

    def __call__(self, params: dict, metrics: dict) -> dict:
        lambdas = params["lambdas"]
        key = distortion_key(params.get("metric", "mse"))
        point = {"configuration": params["configuration"], "seed": params["seed"], "epoch": metrics["epoch"],
                 "lambdas": lambdas, "distortion_key": key,
                 "rate": [metrics.get(f"{lambda_key(l)}/val_bpp", math.nan) for l in lambdas],
                 "distortion": [metrics.get(f"{lambda_key(l)}/{key}", math.nan) for l in lambdas]}
        self.write(point)
        if params["is_off"]:
            return {"bd_rate_vs_off": 0.0}
        off = self.read(params["seed"], metrics["epoch"], OFF_ID)
        if off is None:
            return {}
        result = bd_rate_checked(off["rate"], off["distortion"], point["rate"], point["distortion"])
        return {"bd_rate_vs_off": result.value}

    def write(self, point: dict) -> None:
        write_bytes(self.root, self.path(point["seed"], point["epoch"], point["configuration"]),
                    json.dumps(point).encode())

    def read(self, seed: int, epoch: int, configuration: str) -> dict | None:
        data = read_bytes(self.root, self.path(seed, epoch, configuration))
        try:
            return json.loads(data) if data is not None else None
        except ValueError:
            return None
