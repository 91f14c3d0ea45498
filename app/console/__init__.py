"""The web console: a static single-page app (plain ES modules and one CSS file, no build step) served
at ``/console`` by the API itself. The page speaks only the public HTTP API (/api/v1), like any other
client; this package serves its files and nothing else, with a strict Content-Security-Policy."""
