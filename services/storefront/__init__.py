"""The storefront API: what a shop's pages talk to (browsing events so far)."""
