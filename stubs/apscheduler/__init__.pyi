# Types for the part of APScheduler 3 that fragment-sync uses; APScheduler 3 ships none.
# A module or call not written here fails `mypy`: type it here before using it.
