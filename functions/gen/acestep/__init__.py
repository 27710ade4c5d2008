"""ACE-Step 1.5 through diffusers' AceStepPipeline (see engine.py)."""

from functions.gen.acestep.engine import AceStepEngine, Cancelled, has_weights
from functions.gen.acestep.variants import VARIANTS, Variant

__all__ = ["VARIANTS", "AceStepEngine", "Cancelled", "Variant", "has_weights"]
