//! Static workspaces file (see `load`), reloaded on change.
