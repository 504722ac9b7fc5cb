"""The diagnosis stage: the ledger's causes ranked, each with the measurements behind it (its facts), the
sentences that word them, a fix, and the change that applies it. One module a cause; causes.py registers them."""
