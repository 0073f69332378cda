"""People: users, their one role each, and their API tokens.

`people.models` holds the tables, `people.schemas` the wire shapes, `people.accounts.People`
the operations (create, list, update, issue and revoke tokens, authenticate), `people.tokens`
how a token is made and stored. The API's `require(Role.X)` and the CLI's `pantau users` are
built on these. Imports only the base layer (`pantau`).
"""
