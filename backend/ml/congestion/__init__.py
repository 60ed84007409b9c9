"""The congestion model: METR-LA style road sensors, speed and level 15/30/60 minutes ahead."""
