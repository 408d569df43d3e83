"""The incident web pages: server-rendered HTML, signed links and sessions, charts."""
