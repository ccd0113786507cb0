// The REST API page: Swagger UI over the gateway's /openapi.json, with "Try it out" sent to
// this gateway. `?uid=alice` signs the page in with a dev token for that user.
const uid = new URLSearchParams(location.search).get('uid');
const token = uid
  ? fetch(`/dev/token?uid=${encodeURIComponent(uid)}`)
    .then((r) => (r.ok ? r.json() : Promise.reject(new Error(`dev token: ${r.status}`))))
    .then((body) => body.token)
  : Promise.resolve(null);

const ui = SwaggerUIBundle({
  url: '/openapi.json',
  dom_id: '#swagger-ui',
  deepLinking: true,
  // No call to the public validator badge service: the page works offline.
  validatorUrl: null,
  onComplete: () => {
    token
      .then((value) => value && ui.preauthorizeApiKey('firebaseIdToken', value))
      .catch((err) => console.error(err));
  },
});
