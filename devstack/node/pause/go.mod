// The sandbox ("pause") program of the local node's pods; see devstack/node.py.
module binderadmin.local/devstack/node/pause

go 1.24.0
