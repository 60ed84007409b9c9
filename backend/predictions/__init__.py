"""The one prediction entry (`entry.Predictions`), each model kind's serving (`kinds`) and the caches."""
