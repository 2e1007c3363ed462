"""Small-scale studies on MoE models whose experts hellora trains itself (the demo and the proxy study)."""
