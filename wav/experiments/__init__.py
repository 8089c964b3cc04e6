"""One module per paper figure: `run()` writes run dirs, `report()`/`plot()` read only their records."""
