"""imgrec's Hydra sweeper plugins (Hydra only loads plugins from the ``hydra_plugins`` namespace)."""
