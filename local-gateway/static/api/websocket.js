// The WebSocket API page: the AsyncAPI React component over the gateway's /asyncapi.json.
AsyncApiStandalone.render(
  {
    schema: { url: '/asyncapi.json', options: { method: 'GET' } },
    config: { show: { sidebar: true, errors: true } },
  },
  document.getElementById('asyncapi'),
);
