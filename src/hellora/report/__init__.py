"""Reports from saved JSON: markdown tables and PNG figures (expert heatmaps, throughput, warm-up stability)."""
