//! Where to rotate a credential by hand, per credential kind, for kinds no
//! configured rotator handles.

/// Returns the instructions for rotating a credential of `kind` by hand.
/// `key_id` is filled in where the provider names keys by id.
pub fn manual_rotation(kind: &str, key_id: Option<&str>) -> String {
    let key = key_id.unwrap_or("KEY_ID");
    match kind {
        "aws-access-key-id" | "aws-secret-access-key" => format!(
            "AWS IAM: find the owner with `aws iam get-access-key-last-used --access-key-id {key}` \
             (field UserName), create a replacement with `aws iam create-access-key --user-name USER`, \
             deploy it, then `aws iam update-access-key --user-name USER --access-key-id {key} --status Inactive` \
             and `aws iam delete-access-key --user-name USER --access-key-id {key}` \
             (console: IAM > Users > USER > Security credentials)"
        ),
        "aws-session-token" => "AWS STS session token: it expires on its own; to end it now, revoke the \
             role's active sessions (IAM console > Roles > ROLE > Revoke sessions) and rotate the \
             long-term key that issued it"
            .to_owned(),
        "gcp-service-account" => format!(
            "GCP service-account key: `gcloud iam service-accounts keys create new-key.json --iam-account=SA_EMAIL`, \
             deploy it, then `gcloud iam service-accounts keys delete {key} --iam-account=SA_EMAIL` \
             (the key id and SA_EMAIL are the private_key_id and client_email fields of the leaked key file)"
        ),
        "github-token" => "GitHub token: revoke it at https://github.com/settings/tokens (classic) or \
             https://github.com/settings/personal-access-tokens (fine-grained), or for a GitHub App at \
             its settings page; issue a new one with the same scopes"
            .to_owned(),
        "gitlab-token" => "GitLab token: revoke it under User settings > Access tokens \
             (/-/user_settings/personal_access_tokens) or the project's or group's Access tokens page, \
             and create a replacement"
            .to_owned(),
        "slack-token" => "Slack token: at https://api.slack.com/apps > your app > OAuth & Permissions, \
             revoke the token and reinstall the app to issue a new one"
            .to_owned(),
        "slack-webhook" => "Slack webhook: at https://api.slack.com/apps > your app > Incoming Webhooks, \
             remove the webhook URL and add a new one"
            .to_owned(),
        "stripe-key" => "Stripe key: roll it at https://dashboard.stripe.com/apikeys (Roll key), \
             choosing an expiry of now for the old key"
            .to_owned(),
        "npm-token" => "npm token: `npm token revoke TOKEN_ID` (list ids with `npm token list`) or \
             https://www.npmjs.com/settings/USER/tokens, then create a new one"
            .to_owned(),
        "pypi-token" => "PyPI token: remove it at https://pypi.org/manage/account/token/ and create a \
             new one (a trusted publisher needs no token)"
            .to_owned(),
        "google-api-key" => "Google API key: in the Google Cloud console, APIs & Services > Credentials, \
             regenerate or delete the key (`gcloud services api-keys list` finds it)"
            .to_owned(),
        "google-oauth-client-secret" => "Google OAuth client secret: in the Google Cloud console, \
             APIs & Services > Credentials > the OAuth client, add a new secret, deploy it, then \
             disable and delete the old one"
            .to_owned(),
        "azure-storage-connection-string" => "Azure storage account key: `az storage account keys renew \
             --account-name ACCOUNT --key key1` (or key2, whichever leaked), or the portal's Storage \
             account > Access keys > Rotate key"
            .to_owned(),
        "docker-config-auth" => "registry credential from a docker config.json: change the password or \
             revoke the access token at that registry, then `docker login` again"
            .to_owned(),
        "private-key" => "private key: generate a new key pair, install the new public key where the \
             old one is trusted (authorized_keys, a deploy key, a TLS certificate issued anew), then \
             remove the old public key; revoke a certificate through its CA"
            .to_owned(),
        "jwt" => "JWT: it stays valid until it expires; rotate the issuer's signing key or revoke the \
             session or refresh token it belongs to"
            .to_owned(),
        "database-url" | "password" | "url-password" => "password: change it at the service it \
             belongs to (for a database, `ALTER USER ... PASSWORD ...`) and update every consumer"
            .to_owned(),
        _ => "find the service this secret belongs to and rotate it there; then update every \
             consumer"
            .to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aws_instructions_name_the_key() {
        let text = manual_rotation("aws-access-key-id", Some("AKIAEXAMPLE"));
        assert!(text.contains("--access-key-id AKIAEXAMPLE"));
    }

    #[test]
    fn unknown_kind_gets_generic_advice() {
        let text = manual_rotation("something-new", None);
        assert!(text.contains("rotate it there"));
    }
}
