"""Accounts: users, password sign-in, API tokens. Models in `auth.models`, views in `auth.views`."""
