"""MIRAGE, small: frozen encoder -> Q-Former compression -> per-image retriever -> tiny LM over the kept images."""
